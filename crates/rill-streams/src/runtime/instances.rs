//! What an instance publishes about itself: its query address and the tasks it owns.

use crate::task::TaskId;

/// An instance's entry in the registry topic (JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct InstanceInfo {
    /// `host:port` for interactive queries, if it serves them.
    pub host: Option<String>,
    /// Owned tasks as `(subtopology, partition)`.
    pub tasks: Vec<(usize, i32)>,
}

impl InstanceInfo {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub fn owns(&self, task: TaskId) -> bool {
        self.tasks.contains(&(task.subtopology, task.partition))
    }
}
