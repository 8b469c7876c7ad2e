//! Who is connected to this server right now, for every session's status bar.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The admins with an open session; each session holds a [`Present`] while it runs.
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: Mutex<(u64, BTreeMap<u64, String>)>,
    names: watch::Sender<Vec<String>>,
}

impl Presence {
    pub fn new() -> Presence {
        let (names, _) = watch::channel(Vec::new());
        Presence { inner: Arc::new(Inner { sessions: Mutex::new((0, BTreeMap::new())), names }) }
    }

    /// Counts `name` as connected until the returned guard is dropped.
    pub fn join(&self, name: &str) -> Present {
        let id = self.update(|(next, sessions)| {
            *next += 1;
            sessions.insert(*next, name.to_string());
            *next
        });
        Present { presence: self.clone(), id }
    }

    /// The names of the connected admins (one entry per session), sorted, as they change.
    pub fn watch(&self) -> watch::Receiver<Vec<String>> {
        self.inner.names.subscribe()
    }

    pub fn count(&self) -> usize {
        self.inner.names.borrow().len()
    }

    fn update<T>(&self, change: impl FnOnce(&mut (u64, BTreeMap<u64, String>)) -> T) -> T {
        let mut sessions = self.inner.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = change(&mut sessions);
        let mut names: Vec<String> = sessions.1.values().cloned().collect();
        names.sort();
        self.inner.names.send_replace(names);
        result
    }
}

impl Default for Presence {
    fn default() -> Self {
        Presence::new()
    }
}

/// One open session; dropping it (however the session ended) removes it.
pub struct Present {
    presence: Presence,
    id: u64,
}

impl Drop for Present {
    fn drop(&mut self) {
        self.presence.update(|(_, sessions)| sessions.remove(&self.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_listed_while_they_last() {
        let presence = Presence::new();
        let watcher = presence.watch();
        let bob = presence.join("bob");
        let alice = presence.join("alice");
        let alice_again = presence.join("alice");
        assert_eq!(*watcher.borrow(), ["alice", "alice", "bob"]);
        drop(alice);
        drop(bob);
        assert_eq!(*watcher.borrow(), ["alice"]);
        drop(alice_again);
        assert_eq!(presence.count(), 0);
    }
}
