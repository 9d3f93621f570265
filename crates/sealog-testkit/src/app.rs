//! The whole HTTP API in process: a ledger, the server's router, and requests sent with
//! `tower::ServiceExt::oneshot` — no socket, no child process. Route, role and error tests
//! use this; the few end-to-end tests of the real process use [`crate::ServerProcess`].

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use sealog_ledger::{Ledger, LedgerConfig, Packs, StoreConfig, Undeclared};
use sealog_server::keys::{KeySpec, Role};
use sealog_server::{App, ServerConfig};
use tower::ServiceExt;

use crate::http::{Api, Resp};

/// The ledger as `sealog serve` opens it, with the built-in packs.
pub fn open_ledger(dir: &Path, undeclared: Undeclared) -> Ledger {
    Ledger::open(
        dir,
        LedgerConfig {
            store: StoreConfig::default(),
            packs: Packs::builtin(),
            undeclared,
        },
    )
    .expect("open the ledger")
}

pub struct InProcess {
    runtime: tokio::runtime::Runtime,
    app: Option<App>,
    router: Router,
    pub dir: PathBuf,
}

impl InProcess {
    /// With the built-in packs and `--accept-undeclared-types`, so events of ad-hoc types are
    /// appended: for tests about the API rather than the packs.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, Undeclared::Accept, ServerConfig::default())
    }

    /// With the ledger's defaults: every event must pass its type's pack.
    pub fn start_packs(dir: &Path) -> Self {
        Self::start_with(dir, Undeclared::Quarantine, ServerConfig::default())
    }

    pub fn start_with(dir: &Path, undeclared: Undeclared, config: ServerConfig) -> Self {
        Self::start_ledger(dir, open_ledger(dir, undeclared), config)
    }

    /// As `sealog serve --packs` runs: these packs (the built-in ones and the user's), every
    /// event checked by its type's.
    pub fn start_with_packs(dir: &Path, packs: Packs) -> Self {
        let config = LedgerConfig {
            store: StoreConfig::default(),
            packs,
            undeclared: Undeclared::Quarantine,
        };
        let ledger = Ledger::open(dir, config).expect("open the ledger");
        Self::start_ledger(dir, ledger, ServerConfig::default())
    }

    fn start_ledger(dir: &Path, ledger: Ledger, config: ServerConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let app = runtime
            .block_on(App::new(&config, ledger))
            .expect("build the app");
        let router = app.router();
        InProcess {
            runtime,
            app: Some(app),
            router,
            dir: dir.to_path_buf(),
        }
    }

    /// Creates a key in the key file, as `sealog keys create` does; returns (secret, id).
    pub fn create_key(
        &self,
        roles: &[&str],
        tenant: Option<&str>,
        data_subject: Option<&str>,
    ) -> (String, String) {
        let spec = KeySpec {
            roles: roles
                .iter()
                .map(|r| r.parse::<Role>().expect("a role"))
                .collect(),
            tenant: tenant.map(str::to_string),
            data_subject: data_subject.map(str::to_string),
            label: None,
        };
        let new = sealog_server::keys::create(&self.dir, spec, "tests").expect("create a key");
        (new.secret, new.record.id)
    }

    /// Closes the app: queued appends are committed, the ledger closes with a final
    /// checkpoint.
    pub fn stop(mut self) {
        if let Some(app) = self.app.take() {
            self.runtime.block_on(app.close()).expect("close the app");
        }
    }

    /// Sends a request built by the caller: for requests [`Api::send`]'s string arguments
    /// cannot express, such as the fuzzer's arbitrary headers.
    pub fn request(&self, req: axum::http::Request<Body>) -> Resp {
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let resp = router.oneshot(req).await.expect("the router answers");
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = resp
                .into_body()
                .collect()
                .await
                .expect("the body")
                .to_bytes()
                .to_vec();
            Resp {
                status,
                headers,
                body,
            }
        })
    }
}

impl Api for InProcess {
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut req = axum::http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_vec())))
            .expect("a request");
        self.request(req)
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            let _ = self.runtime.block_on(app.close());
        }
    }
}
