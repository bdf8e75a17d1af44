//! Merging identical queries in flight: while one upstream query for a question is
//! under way, the same question from other clients waits for its answer instead of
//! sending another (as Unbound and dnsmasq do), so a burst of one name costs one upstream
//! query, and a flood of one name cannot multiply traffic to the upstreams.
//!
//! Questions are the same when name, type, class (always IN here) and the client's
//! DNSSEC OK bit match.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// What a merged query gives every waiter: the answer and the upstream that gave it, or
/// why none did.
pub type Outcome = Result<Arc<(Message, String)>, String>;

/// A question, as far as merging goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// Lower case, no final dot.
    pub name: String,
    pub qtype: RecordType,
    pub dnssec_ok: bool,
}

type Pending = Shared<BoxFuture<'static, Outcome>>;

/// The queries in flight.
#[derive(Default)]
pub struct InFlight {
    map: Mutex<HashMap<Key, (u64, Pending)>>,
    next: AtomicU64,
    merged: AtomicU64,
}

/// Forgets an entry when its waiter finishes or is dropped, unless a newer query for the
/// same question replaced it.
struct Forget<'a> {
    flight: &'a InFlight,
    key: &'a Key,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut map = self.flight.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(self.key);
        }
    }
}

impl InFlight {
    /// The answer to `key`: joins the query in flight for it, or starts `query()` and
    /// lets later callers join it until it completes.
    pub async fn run<F>(&self, key: Key, query: impl FnOnce() -> F) -> Outcome
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let (id, pending) = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&key) {
                Some((id, p)) => {
                    self.merged.fetch_add(1, Ordering::Relaxed);
                    (*id, p.clone())
                }
                None => {
                    let id = self.next.fetch_add(1, Ordering::Relaxed);
                    let p = query().boxed().shared();
                    map.insert(key.clone(), (id, p.clone()));
                    (id, p)
                }
            }
        };
        let _forget = Forget {
            flight: self,
            key: &key,
            id,
        };
        pending.await
    }

    /// Queries answered by joining another one, since start.
    pub fn merged(&self) -> u64 {
        self.merged.load(Ordering::Relaxed)
    }

    /// Questions in flight now.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no question is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn one_query_for_many_waiters() {
        let f = Arc::new(InFlight::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let key = |n: &str| Key {
            name: n.into(),
            qtype: RecordType::A,
            dnssec_ok: false,
        };
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (f, calls) = (f.clone(), calls.clone());
            let k = key(if i == 9 { "other.test" } else { "a.test" });
            tasks.push(tokio::spawn(async move {
                f.run(k, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    Ok(Arc::new((Message::query(), "up".to_string())))
                })
                .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(f.merged(), 8);
        assert!(f.is_empty());
    }
}
