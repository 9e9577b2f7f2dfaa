//! Text and graph (DOT) descriptions of a topology, for documentation and the dashboard.

use std::fmt::Write;

use super::{NodeKind, TopicName, Topology};

fn topic_label(topic: &TopicName) -> String {
    match topic {
        TopicName::External(name) => name.clone(),
        TopicName::Internal(suffix) => format!("<application>-{suffix}"),
    }
}

impl Topology {
    fn children_of(&self, node: usize) -> Vec<&str> {
        (0..self.nodes.len())
            .filter(|child| self.nodes[*child].parents.contains(&node))
            .map(|child| self.nodes[child].name.as_str())
            .collect()
    }

    /// The topics outside the application that it reads (sources and global stores) and
    /// writes (sinks; `<dynamic>` for a sink that picks its topic per record), sorted and
    /// without repeats; its own repartition and changelog topics are left out. What a picture
    /// of several applications talking through topics needs.
    pub fn external_topics(&self) -> (Vec<String>, Vec<String>) {
        let mut reads = std::collections::BTreeSet::new();
        let mut writes = std::collections::BTreeSet::new();
        for node in &self.nodes {
            match &node.kind {
                NodeKind::Source { topics } => {
                    for topic in topics {
                        if let TopicName::External(name) = topic {
                            reads.insert(name.clone());
                        }
                    }
                }
                NodeKind::Sink { topic } => match topic {
                    Some(TopicName::External(name)) => {
                        writes.insert(name.clone());
                    }
                    Some(TopicName::Internal(_)) => {}
                    None => {
                        writes.insert("<dynamic>".to_string());
                    }
                },
                NodeKind::Processor => {}
            }
        }
        for global in &self.global_stores {
            reads.insert(global.topic.clone());
        }
        (reads.into_iter().collect(), writes.into_iter().collect())
    }

    /// A text description in the style of Kafka Streams' `Topology#describe()`.
    pub fn describe(&self) -> String {
        let mut out = String::from("Topologies:\n");
        for sub in &self.subtopologies {
            let _ = writeln!(out, "   Sub-topology: {}", sub.id);
            for &id in &sub.nodes {
                let node = &self.nodes[id];
                let _ = match &node.kind {
                    NodeKind::Source { topics } => {
                        let topics: Vec<String> = topics.iter().map(topic_label).collect();
                        writeln!(
                            out,
                            "    Source: {} (topics: [{}])",
                            node.name,
                            topics.join(", ")
                        )
                    }
                    NodeKind::Processor => {
                        writeln!(
                            out,
                            "    Processor: {} (stores: [{}])",
                            node.name,
                            node.stores.join(", ")
                        )
                    }
                    NodeKind::Sink { topic } => {
                        let topic = topic
                            .as_ref()
                            .map(topic_label)
                            .unwrap_or_else(|| "<dynamic>".into());
                        writeln!(out, "    Sink: {} (topic: {topic})", node.name)
                    }
                };
                let children = self.children_of(id);
                if !children.is_empty() {
                    let _ = writeln!(out, "      --> {}", children.join(", "));
                }
                if !node.parents.is_empty() {
                    let parents: Vec<&str> = node
                        .parents
                        .iter()
                        .map(|p| self.nodes[*p].name.as_str())
                        .collect();
                    let _ = writeln!(out, "      <-- {}", parents.join(", "));
                }
            }
        }
        for global in &self.global_stores {
            let _ = writeln!(
                out,
                "   Global store: {} (topic: {})",
                global.name, global.topic
            );
        }
        out
    }

    /// The topology as a Graphviz DOT graph: one cluster per sub-topology, topics as ellipses,
    /// processors as boxes, stores as cylinders.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph topology {\n  rankdir=LR;\n");
        for sub in &self.subtopologies {
            let _ = writeln!(
                out,
                "  subgraph cluster_{} {{\n    label=\"sub-topology {}\";",
                sub.id, sub.id
            );
            for &id in &sub.nodes {
                let _ = writeln!(out, "    \"{}\" [shape=box];", self.nodes[id].name);
            }
            out.push_str("  }\n");
            for &id in &sub.nodes {
                let node = &self.nodes[id];
                for parent in &node.parents {
                    let _ = writeln!(
                        out,
                        "  \"{}\" -> \"{}\";",
                        self.nodes[*parent].name, node.name
                    );
                }
                match &node.kind {
                    NodeKind::Source { topics } => {
                        for topic in topics {
                            let _ = writeln!(
                                out,
                                "  \"topic:{0}\" [shape=ellipse,label=\"{0}\"];\n  \"topic:{0}\" -> \"{1}\";",
                                topic_label(topic),
                                node.name
                            );
                        }
                    }
                    NodeKind::Sink { topic } => {
                        let topic = topic
                            .as_ref()
                            .map(topic_label)
                            .unwrap_or_else(|| "<dynamic>".into());
                        let _ = writeln!(
                            out,
                            "  \"topic:{0}\" [shape=ellipse,label=\"{0}\"];\n  \"{1}\" -> \"topic:{0}\";",
                            topic, node.name
                        );
                    }
                    NodeKind::Processor => {}
                }
                for store in &node.stores {
                    let _ = writeln!(
                        out,
                        "  \"store:{0}\" [shape=cylinder,label=\"{0}\"];\n  \"{1}\" -> \"store:{0}\" [dir=both,style=dashed];",
                        store, node.name
                    );
                }
            }
        }
        out.push_str("}\n");
        out
    }
}
