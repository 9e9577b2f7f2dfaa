//! How windowed aggregations fold values into aggregates (count, reduce and aggregate are one
//! fold) and merge the aggregates of sessions. The operators and the DSL that builds them
//! both use it; it uses neither.

use std::sync::Arc;

/// Folds one value into an aggregate (`None`: no aggregate yet).
type FoldFn<K, V, A> = Arc<dyn Fn(&K, &V, Option<A>) -> Option<A> + Send + Sync>;

/// `Option`-folding aggregation shared by count / reduce / aggregate: `initial` is `None` for
/// reduce (the first value starts the result), `aggregator` folds one value in.
pub(crate) struct Folder<K, V, A> {
    pub initial: Arc<dyn Fn() -> Option<A> + Send + Sync>,
    pub aggregator: FoldFn<K, V, A>,
}

impl<K, V, A> Clone for Folder<K, V, A> {
    fn clone(&self) -> Self {
        Folder {
            initial: self.initial.clone(),
            aggregator: self.aggregator.clone(),
        }
    }
}

impl<K: 'static, V: Clone + 'static, A: 'static> Folder<K, V, A> {
    /// Folds `value` into `current` (or into the initial value when there is none yet).
    pub fn fold(&self, key: &K, value: &V, current: Option<A>) -> Option<A> {
        (self.aggregator)(key, value, current.or_else(|| (self.initial)()))
    }

    pub fn aggregate(
        initializer: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
    ) -> Self {
        Folder {
            initial: Arc::new(move || Some(initializer())),
            aggregator: Arc::new(move |key, value, current| {
                current.map(|current| aggregator(key, value, current))
            }),
        }
    }
}

impl<K: 'static, V: Clone + 'static> Folder<K, V, V> {
    pub fn reduce(reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static) -> Self {
        Folder {
            initial: Arc::new(|| None),
            aggregator: Arc::new(move |_, value, current| {
                Some(match current {
                    Some(current) => reducer(&current, value),
                    None => value.clone(),
                })
            }),
        }
    }
}

/// Combines the aggregates of two sessions.
pub(crate) type Merger<K, A> = Arc<dyn Fn(&K, A, A) -> A + Send + Sync>;
