//! Subject keys already unwrapped and made ready, found on every sealed event without
//! allocating and without waiting on another thread's lookup: by pseudonym, then tenant.
//!
//! Every sealed event finds its key here, on whichever thread prepares it, so a lookup
//! touches as few cache lines as it can: the map is split into parts, each under a lock of
//! its own line, so two threads rarely share a lock word; a pseudonym's key of its one tenant
//! (the common case) is held in the map's own slot; and a tenant's name is one shared string,
//! compared where every lookup of that tenant keeps it warm.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sealog_store::UniformMap;

use super::siv::SubjectCipher;

/// How many parts the map is split into; a pseudonym's part is one of its bytes (a keyed
/// hash, so nobody can aim pseudonyms at one part).
const PARTS: usize = 16;

/// A pseudonym's ready keys: one per tenant.
enum OfPseudonym {
    One(Arc<str>, Arc<SubjectCipher>),
    Many(Vec<(Arc<str>, Arc<SubjectCipher>)>),
}

impl OfPseudonym {
    fn get(&self, tenant: &str) -> Option<&Arc<SubjectCipher>> {
        match self {
            OfPseudonym::One(t, c) => (**t == *tenant).then_some(c),
            OfPseudonym::Many(all) => all.iter().find(|(t, _)| **t == *tenant).map(|(_, c)| c),
        }
    }

    /// Keeps `cipher` as `tenant`'s key.
    fn put(&mut self, tenant: Arc<str>, cipher: Arc<SubjectCipher>) {
        match self {
            OfPseudonym::One(t, c) if *t == tenant => *c = cipher,
            OfPseudonym::One(t, c) => {
                *self = OfPseudonym::Many(vec![(t.clone(), c.clone()), (tenant, cipher)]);
            }
            OfPseudonym::Many(all) => match all.iter_mut().find(|(t, _)| *t == tenant) {
                Some((_, c)) => *c = cipher,
                None => all.push((tenant, cipher)),
            },
        }
    }

    /// Forgets `tenant`'s key; whether any key is left.
    fn forget(&mut self, tenant: &str) -> bool {
        match self {
            OfPseudonym::One(t, _) => **t != *tenant,
            OfPseudonym::Many(all) => {
                all.retain(|(t, _)| **t != *tenant);
                !all.is_empty()
            }
        }
    }
}

type ByPseudonym = UniformMap<[u8; 16], OfPseudonym>;

/// A part of the map, on a cache line of its own.
#[derive(Default)]
#[repr(align(64))]
struct Part(RwLock<ByPseudonym>);

#[derive(Default)]
pub(super) struct ReadyKeys {
    parts: [Part; PARTS],
    /// Each tenant's name, once.
    tenants: Mutex<HashSet<Arc<str>>>,
}

impl ReadyKeys {
    pub(super) fn get(&self, tenant: &str, ps: &[u8; 16]) -> Option<Arc<SubjectCipher>> {
        self.read(ps).get(ps)?.get(tenant).cloned()
    }

    pub(super) fn insert(&self, tenant: &str, ps: [u8; 16], cipher: Arc<SubjectCipher>) {
        let tenant = self.tenant(tenant);
        let mut part = self.write(&ps);
        match part.get_mut(&ps) {
            Some(of_ps) => of_ps.put(tenant, cipher),
            None => {
                part.insert(ps, OfPseudonym::One(tenant, cipher));
            }
        }
    }

    pub(super) fn remove(&self, tenant: &str, ps: &[u8; 16]) {
        let mut part = self.write(ps);
        if let Some(of_ps) = part.get_mut(ps)
            && !of_ps.forget(tenant)
        {
            part.remove(ps);
        }
    }

    pub(super) fn clear(&self) {
        for part in &self.parts {
            part.0.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    fn tenant(&self, name: &str) -> Arc<str> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        match tenants.get(name) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = name.into();
                tenants.insert(t.clone());
                t
            }
        }
    }

    fn part(&self, ps: &[u8; 16]) -> &RwLock<ByPseudonym> {
        &self.parts[usize::from(ps[15]) % PARTS].0
    }

    fn read(&self, ps: &[u8; 16]) -> RwLockReadGuard<'_, ByPseudonym> {
        self.part(ps).read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, ps: &[u8; 16]) -> RwLockWriteGuard<'_, ByPseudonym> {
        self.part(ps).write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_found_by_pseudonym_and_tenant_and_forgotten_alone() {
        let keys = ReadyKeys::default();
        let ps = [9u8; 16];
        let (a, b, c) = (
            Arc::new(SubjectCipher::new(&[1; 64], b"a")),
            Arc::new(SubjectCipher::new(&[2; 64], b"b")),
            Arc::new(SubjectCipher::new(&[3; 64], b"c")),
        );
        keys.insert("tenant-a", ps, a.clone());
        assert!(Arc::ptr_eq(&keys.get("tenant-a", &ps).unwrap(), &a));
        assert!(keys.get("", &ps).is_none());
        keys.insert("", ps, b.clone());
        assert!(Arc::ptr_eq(&keys.get("tenant-a", &ps).unwrap(), &a));
        assert!(Arc::ptr_eq(&keys.get("", &ps).unwrap(), &b));
        assert!(keys.get("tenant-b", &ps).is_none());
        assert!(keys.get("tenant-a", &[8u8; 16]).is_none());
        // Another pseudonym in the same part, and a key replaced.
        let mut near = ps;
        near[0] = 1;
        keys.insert("tenant-a", near, c.clone());
        keys.insert("", ps, c.clone());
        assert!(Arc::ptr_eq(&keys.get("", &ps).unwrap(), &c));
        keys.remove("tenant-a", &ps);
        assert!(keys.get("tenant-a", &ps).is_none());
        assert!(Arc::ptr_eq(&keys.get("", &ps).unwrap(), &c));
        assert!(Arc::ptr_eq(&keys.get("tenant-a", &near).unwrap(), &c));
        keys.remove("", &ps);
        assert!(keys.get("", &ps).is_none());
        keys.insert("tenant-a", ps, a.clone());
        assert!(Arc::ptr_eq(&keys.get("tenant-a", &ps).unwrap(), &a));
        keys.clear();
        assert!(keys.get("tenant-a", &ps).is_none());
        assert!(keys.get("tenant-a", &near).is_none());
    }
}
