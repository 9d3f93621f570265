//! Subject keys already unwrapped and made ready, found on every sealed event without
//! allocating and without waiting on another thread's lookup: by pseudonym, then tenant.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sealog_store::UniformMap;

use super::siv::SubjectCipher;

/// Each pseudonym's ready keys, one per tenant. A pseudonym is a keyed hash already, so it
/// is its own hash in the map.
type ByPseudonym = UniformMap<[u8; 16], Vec<(Box<str>, Arc<SubjectCipher>)>>;

#[derive(Default)]
pub(super) struct ReadyKeys {
    map: RwLock<ByPseudonym>,
}

impl ReadyKeys {
    pub(super) fn get(&self, tenant: &str, ps: &[u8; 16]) -> Option<Arc<SubjectCipher>> {
        let map = self.read();
        let of_ps = map.get(ps)?;
        of_ps
            .iter()
            .find(|(t, _)| &**t == tenant)
            .map(|(_, c)| c.clone())
    }

    pub(super) fn insert(&self, tenant: &str, ps: [u8; 16], cipher: Arc<SubjectCipher>) {
        let mut map = self.write();
        let of_ps = map.entry(ps).or_default();
        match of_ps.iter_mut().find(|(t, _)| &**t == tenant) {
            Some((_, c)) => *c = cipher,
            None => of_ps.push((tenant.into(), cipher)),
        }
    }

    pub(super) fn remove(&self, tenant: &str, ps: &[u8; 16]) {
        let mut map = self.write();
        if let Some(of_ps) = map.get_mut(ps) {
            of_ps.retain(|(t, _)| &**t != tenant);
            if of_ps.is_empty() {
                map.remove(ps);
            }
        }
    }

    pub(super) fn clear(&self) {
        self.write().clear();
    }

    fn read(&self) -> RwLockReadGuard<'_, ByPseudonym> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, ByPseudonym> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_found_by_pseudonym_and_tenant_and_forgotten_alone() {
        let keys = ReadyKeys::default();
        let ps = [9u8; 16];
        let (a, b) = (
            Arc::new(SubjectCipher::new(&[1; 64], b"a")),
            Arc::new(SubjectCipher::new(&[2; 64], b"b")),
        );
        keys.insert("tenant-a", ps, a.clone());
        keys.insert("", ps, b.clone());
        assert!(Arc::ptr_eq(&keys.get("tenant-a", &ps).unwrap(), &a));
        assert!(Arc::ptr_eq(&keys.get("", &ps).unwrap(), &b));
        assert!(keys.get("tenant-b", &ps).is_none());
        assert!(keys.get("tenant-a", &[8u8; 16]).is_none());
        keys.remove("tenant-a", &ps);
        assert!(keys.get("tenant-a", &ps).is_none());
        assert!(Arc::ptr_eq(&keys.get("", &ps).unwrap(), &b));
        keys.clear();
        assert!(keys.get("", &ps).is_none());
    }
}
