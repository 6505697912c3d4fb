//! A cache of loaded TorchScript modules that does not keep them alive: the scopes (app
//! generations) holding a module do, so a retired generation's models are freed with it.
//! Each entry remembers the stamp (the files' modification times) it was made from, and a
//! changed stamp misses.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Weak},
};
use tch::CModule;

/// Modules by key, each with its stamp.
pub(super) struct ModuleCache<K, S> {
    entries: HashMap<K, (S, Weak<CModule>)>,
}

impl<K, S> Default for ModuleCache<K, S> {
    fn default() -> Self {
        ModuleCache {
            entries: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash, S: PartialEq> ModuleCache<K, S> {
    /// The module cached for `key` when it was made from `stamp` and is still alive.
    pub(super) fn get(&self, key: &K, stamp: &S) -> Option<Arc<CModule>> {
        let (made_from, module) = self.entries.get(key)?;
        (made_from == stamp).then(|| module.upgrade()).flatten()
    }

    /// Caches `module` for `key`, dropping the entries whose modules are gone.
    pub(super) fn put(&mut self, key: K, stamp: S, module: &Arc<CModule>) {
        self.entries.retain(|_, (_, m)| m.strong_count() > 0);
        self.entries.insert(key, (stamp, Arc::downgrade(module)));
    }
}
