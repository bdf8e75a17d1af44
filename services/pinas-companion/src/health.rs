//! The NAS's health check: one `GET` of its health URL. Any 2xx answer within the time
//! limit means the NAS is up; anything else (no route, refused, timeout, 5xx) is a miss.

use std::time::Duration;

/// Checks health URLs with one shared HTTP client (connections are not kept: a sleeping
/// NAS must not hold a socket of ours open).
#[derive(Clone)]
pub struct Health {
    client: reqwest::Client,
}

impl Health {
    /// A checker whose requests give up after `timeout`.
    ///
    /// # Errors
    /// When the TLS roots cannot be loaded: the message says so.
    pub fn new(timeout: Duration) -> Result<Health, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(0)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("pinas-companion/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the health-check client: {e}"))?;
        Ok(Health { client })
    }

    /// `Ok(())` when `url` answers 2xx, else what went wrong, for people.
    pub async fn check(&self, url: &str) -> Result<(), String> {
        match self.client.get(url).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("{url} answered {}", r.status())),
            Err(e) if e.is_timeout() => Err(format!("{url} did not answer in time")),
            Err(e) if e.is_connect() => Err(format!("cannot connect to {url}")),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }
}
