//! The `KAFKA_*` environment of one broker container, built without I/O.
//!
//! Both the upstream `apache/kafka` image and the local one
//! (`compose/images/kafka/`) turn `KAFKA_<NAME>` into the broker property
//! `<name>` (`_` → `.`, `__` → `_`, `___` → `-`: upstream's `ConvertKey`
//! in `docker/resources/ub/ub.go`; Confluent's images differ), so one description of a
//! node configures either. [`NodeEnv::vars`] is what a container gets;
//! [`property_to_env`] is the mapping, for settings this module does not name.

/// A listener: its name, the address it binds inside the container, the
/// address it advertises (none for a controller listener) and its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, e.g. `EXTERNAL`.
    pub name: String,
    /// `host:port` bound inside the container.
    pub bind: String,
    /// `host:port` clients are told; `None` for the controller listener.
    pub advertised: Option<String>,
    /// `PLAINTEXT`, `SASL_SSL`, ...
    pub protocol: String,
}

impl Listener {
    /// A plaintext listener that advertises `advertised`.
    pub fn plaintext(name: &str, bind: impl Into<String>, advertised: impl Into<String>) -> Listener {
        Listener {
            name: name.into(),
            bind: bind.into(),
            advertised: Some(advertised.into()),
            protocol: "PLAINTEXT".into(),
        }
    }

    /// The controller listener (`CONTROLLER`, plaintext, not advertised).
    pub fn controller(bind: impl Into<String>) -> Listener {
        Listener {
            name: "CONTROLLER".into(),
            bind: bind.into(),
            advertised: None,
            protocol: "PLAINTEXT".into(),
        }
    }
}

/// One combined broker + controller node of a KRaft cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEnv {
    /// `node.id`.
    pub node_id: u32,
    /// The cluster id every node is formatted with.
    pub cluster_id: String,
    /// `controller.quorum.voters`, e.g. `1@kafka-1:9093,2@kafka-2:9093`.
    pub voters: String,
    /// Listeners; one must be named `CONTROLLER`.
    pub listeners: Vec<Listener>,
    /// `inter.broker.listener.name`.
    pub inter_broker: String,
    /// Replication of the internal topics and the default for new topics.
    pub replication: u32,
    /// `min.insync.replicas` (and of the transaction log).
    pub min_insync: u32,
    /// Further broker properties (`name`, `value`).
    pub extra: Vec<(String, String)>,
}

/// `broker.property-name_x` → `KAFKA_BROKER_PROPERTY___NAME__X`.
pub fn property_to_env(property: &str) -> String {
    let mut env = String::from("KAFKA_");
    for c in property.chars() {
        match c {
            '.' => env.push('_'),
            '-' => env.push_str("___"),
            '_' => env.push_str("__"),
            c => env.push(c.to_ascii_uppercase()),
        }
    }
    env
}

impl NodeEnv {
    /// The broker properties of this node, in a stable order.
    pub fn properties(&self) -> Vec<(String, String)> {
        let join = |f: &dyn Fn(&Listener) -> Option<String>| {
            self.listeners.iter().filter_map(f).collect::<Vec<_>>().join(",")
        };
        let mut p = vec![
            ("node.id".to_owned(), self.node_id.to_string()),
            ("process.roles".into(), "broker,controller".into()),
            ("controller.quorum.voters".into(), self.voters.clone()),
            ("controller.listener.names".into(), "CONTROLLER".into()),
            ("inter.broker.listener.name".into(), self.inter_broker.clone()),
            ("listeners".into(), join(&|l| Some(format!("{}://{}", l.name, l.bind)))),
            (
                "advertised.listeners".into(),
                join(&|l| l.advertised.as_ref().map(|a| format!("{}://{a}", l.name))),
            ),
            ("listener.security.protocol.map".into(), join(&|l| Some(format!("{}:{}", l.name, l.protocol)))),
            ("default.replication.factor".into(), self.replication.to_string()),
            ("min.insync.replicas".into(), self.min_insync.to_string()),
            ("offsets.topic.replication.factor".into(), self.replication.to_string()),
            ("transaction.state.log.replication.factor".into(), self.replication.to_string()),
            ("transaction.state.log.min.isr".into(), self.min_insync.to_string()),
            ("share.coordinator.state.topic.replication.factor".into(), self.replication.to_string()),
            ("share.coordinator.state.topic.min.isr".into(), self.min_insync.to_string()),
            ("unclean.leader.election.enable".into(), "false".into()),
            ("auto.create.topics.enable".into(), "false".into()),
            // A test's first consumer should not wait for others to join.
            ("group.initial.rebalance.delay.ms".into(), "0".into()),
        ];
        p.extend(self.extra.iter().cloned());
        p
    }

    /// The container environment: `CLUSTER_ID` and one `KAFKA_*` per property.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v = vec![("CLUSTER_ID".to_owned(), self.cluster_id.clone())];
        v.extend(self.properties().into_iter().map(|(k, val)| (property_to_env(&k), val)));
        v
    }
}

/// A fixed, valid KRaft cluster id (22 characters of URL-safe base64) for
/// test clusters; each node of one cluster must share it.
pub const TEST_CLUSTER_ID: &str = "c2FnYS1rYWZrYS10ZXN0cw";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_property_names_like_the_upstream_image() {
        assert_eq!(property_to_env("node.id"), "KAFKA_NODE_ID");
        assert_eq!(
            property_to_env("listener.name.secure.scram-sha-512.sasl.jaas.config"),
            "KAFKA_LISTENER_NAME_SECURE_SCRAM___SHA___512_SASL_JAAS_CONFIG"
        );
        assert_eq!(property_to_env("a_b"), "KAFKA_A__B");
    }

    #[test]
    fn one_node_lists_every_listener_and_advertises_only_client_ones() {
        let node = NodeEnv {
            node_id: 2,
            cluster_id: TEST_CLUSTER_ID.into(),
            voters: "1@k1:9093,2@k2:9093".into(),
            listeners: vec![
                Listener::plaintext("INTERNAL", "0.0.0.0:9092", "k2:9092"),
                Listener::plaintext("EXTERNAL", "0.0.0.0:19092", "127.0.0.1:19092"),
                Listener::controller("0.0.0.0:9093"),
            ],
            inter_broker: "INTERNAL".into(),
            replication: 3,
            min_insync: 2,
            extra: vec![],
        };
        let vars = node.vars();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CLUSTER_ID"), Some(TEST_CLUSTER_ID));
        assert_eq!(
            get("KAFKA_LISTENERS"),
            Some("INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092,CONTROLLER://0.0.0.0:9093")
        );
        assert_eq!(get("KAFKA_ADVERTISED_LISTENERS"), Some("INTERNAL://k2:9092,EXTERNAL://127.0.0.1:19092"));
        assert_eq!(
            get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"),
            Some("INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT")
        );
        assert_eq!(get("KAFKA_MIN_INSYNC_REPLICAS"), Some("2"));
        assert_eq!(get("KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"), Some("false"));
    }
}
