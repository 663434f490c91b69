//! The in-cluster deployment (`deploy/kubernetes/`, `Dockerfile`) holds together: every
//! manifest parses as its Kubernetes type; the ClusterRole lets Panoptes get, list and watch
//! every `[[watch]]` resource of the shipped `clusters.toml` and of the ConfigMap's config;
//! the ConfigMap's config loads and uses `in_cluster = true`; the probes hit `/healthz` and
//! `/readyz` on the port the config serves them on; the container and the image run as a
//! non-root user; names line up (ServiceAccount ↔ binding ↔ Deployment, ConfigMap ↔ mount ↔
//! `PANOPTES_CONFIG`); leases are granted only in the separate leader-election file.
//!
//! The sharded variant (`deploy/kubernetes/sharded/`, a kustomize overlay on the base) holds
//! together too: N replicas, each with its pod name as identity (downward API into
//! `PANOPTES__SHARDING__IDENTITY`, which the config loader honours), a config with
//! `[sharding]` on that loads, a Role granting every lease verb sharding uses in the Leases'
//! namespace, and a PodDisruptionBudget over the same pods.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use panoptes_runtime::{ClusterSource, PanoptesConfig, ResourceRef};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// The documents of a manifest file, each parsed as `T`.
fn parse_all<T: DeserializeOwned>(file: &str) -> Vec<T> {
    let path = manifests().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            T::deserialize(document)
                .unwrap_or_else(|e| panic!("{} does not parse as its type: {e}", path.display()))
        })
        .collect()
}

fn parse<T: DeserializeOwned>(file: &str) -> T {
    let mut documents = parse_all::<T>(file);
    assert_eq!(documents.len(), 1, "{file} holds one object");
    documents.remove(0)
}

fn deployment_container() -> (Deployment, Container) {
    let deployment: Deployment = parse("deployment.yaml");
    let spec = deployment.spec.clone();
    let pod = spec.template.spec.expect("a pod spec");
    assert_eq!(pod.containers.len(), 1);
    let container = pod.containers[0].clone();
    (deployment, container)
}

fn configmap_config() -> PanoptesConfig {
    configmap_config_from("configmap.yaml", [])
}

/// The `clusters.toml` a ConfigMap manifest holds, loaded with these environment variables.
fn configmap_config_from<const N: usize>(file: &str, env: [(&str, &str); N]) -> PanoptesConfig {
    let configmap: ConfigMap = parse(file);
    let text = configmap
        .data
        .as_ref()
        .and_then(|d| d.get("clusters.toml"))
        .expect("the ConfigMap holds clusters.toml")
        .clone();
    let env = env.map(|(k, v)| (k.to_string(), v.to_string()));
    PanoptesConfig::parse(&text, Path::new(&format!("{file} clusters.toml")), env)
        .unwrap_or_else(|e| panic!("{file}: the ConfigMap's config loads: {e}"))
}

fn shipped_config() -> PanoptesConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters.toml");
    PanoptesConfig::parse(&std::fs::read_to_string(&path).unwrap(), &path, [])
        .expect("the shipped clusters.toml loads")
}

/// Whether `rules` allow `verb` on `resource` (wildcards included).
fn allows(rules: &[PolicyRule], resource: &ResourceRef, verb: &str) -> bool {
    rules.iter().any(|rule| {
        let any = |values: &Option<Vec<String>>, wanted: &str| {
            values.iter().flatten().any(|v| v == "*" || v == wanted)
        };
        any(&rule.api_groups, &resource.group)
            && any(&rule.resources, &resource.plural)
            && rule.verbs.iter().any(|v| v == "*" || v == verb)
    })
}

#[test]
fn the_cluster_role_covers_every_watched_resource() {
    let role: ClusterRole = parse("clusterrole.yaml");
    let rules = role.rules.unwrap_or_default();
    for (source, config) in [
        ("clusters.toml", shipped_config()),
        ("configmap.yaml", configmap_config()),
    ] {
        assert!(!config.watches.is_empty(), "{source} watches something");
        for watch in &config.watches {
            for verb in ["get", "list", "watch"] {
                assert!(
                    allows(&rules, &watch.resource, verb),
                    "clusterrole.yaml must allow {verb} on {} (a [[watch]] of {source})",
                    watch.resource
                );
            }
        }
    }
    // Read-only: nothing in the ClusterRole writes.
    for rule in &rules {
        for verb in &rule.verbs {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str()),
                "{verb} in clusterrole.yaml"
            );
        }
    }
    let leases = ResourceRef {
        group: "coordination.k8s.io".into(),
        version: "v1".into(),
        plural: "leases".into(),
    };
    assert!(
        !allows(&rules, &leases, "update"),
        "leases live in leader-election-role.yaml"
    );
}

#[test]
fn leases_are_granted_in_the_separate_leader_election_file() {
    let text = std::fs::read_to_string(manifests().join("leader-election-role.yaml")).unwrap();
    let mut documents = serde_yaml::Deserializer::from_str(&text);
    let role = Role::deserialize(documents.next().expect("a Role")).expect("the Role parses");
    let binding = RoleBinding::deserialize(documents.next().expect("a RoleBinding"))
        .expect("the RoleBinding parses");
    assert!(documents.next().is_none(), "two objects");
    let leases = ResourceRef {
        group: "coordination.k8s.io".into(),
        version: "v1".into(),
        plural: "leases".into(),
    };
    let rules = role.rules.unwrap_or_default();
    for verb in ["get", "create", "update"] {
        assert!(allows(&rules, &leases, verb), "leases: {verb}");
    }
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", "panoptes")
    );
}

#[test]
fn the_configmap_runs_in_cluster_and_the_probes_hit_its_health_port() {
    let config = configmap_config();
    assert!(
        config
            .clusters
            .iter()
            .all(|c| matches!(c.source, ClusterSource::InCluster)),
        "the in-cluster config uses in_cluster = true"
    );
    let metrics_port = i32::from(config.runtime.metrics_addr.port());
    assert!(
        config.runtime.metrics_addr.ip().is_unspecified(),
        "probes come from the kubelet, not localhost: {}",
        config.runtime.metrics_addr
    );

    let (_, container) = deployment_container();
    let ports = container.ports.clone().unwrap_or_default();
    let port_of = |port: &IntOrString| match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("no container port named {name}"))
                .container_port
        }
    };
    for (probe, path) in [
        (container.liveness_probe.clone(), "/healthz"),
        (container.readiness_probe.clone(), "/readyz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get)
            .unwrap_or_else(|| panic!("an httpGet probe for {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(
            port_of(&get.port),
            metrics_port,
            "{path} on the metrics port"
        );
    }

    let service: Service = parse("service.yaml");
    let service_port = &service.spec.unwrap().ports.unwrap()[0];
    assert_eq!(
        port_of(service_port.target_port.as_ref().unwrap()),
        metrics_port
    );
}

#[test]
fn the_container_and_the_image_run_as_non_root() {
    let (deployment, container) = deployment_container();
    let pod = deployment.spec.template.spec.unwrap();
    let pod_security = pod.security_context.expect("a pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(pod_security.run_as_user.is_some_and(|uid| uid != 0));
    let security = container
        .security_context
        .expect("a container securityContext");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));

    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let stages = dockerfile
        .lines()
        .filter(|l| l.trim_start().starts_with("FROM "))
        .count();
    assert!(stages >= 2, "a multi-stage build");
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "USER {user}");
    assert_eq!(
        pod_security.run_as_user.map(|u| u.to_string()).as_deref(),
        Some(uid),
        "the Deployment runs as the image's user"
    );
}

#[test]
fn names_line_up_across_the_manifests() {
    let account: ServiceAccount = parse("serviceaccount.yaml");
    let (account_name, namespace) = (
        account.metadata.name.unwrap(),
        account.metadata.namespace.unwrap(),
    );
    let role: ClusterRole = parse("clusterrole.yaml");
    let binding: ClusterRoleBinding = parse("clusterrolebinding.yaml");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(binding.role_ref.name), role.metadata.name);
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(subject.name, account_name);
    assert_eq!(subject.namespace.as_deref(), Some(namespace.as_str()));

    let (deployment, container) = deployment_container();
    let pod = deployment.spec.template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(account_name.as_str())
    );
    let configmap: ConfigMap = parse("configmap.yaml");
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| {
            v.config_map.as_ref().map(|c| c.name.as_str()) == configmap.metadata.name.as_deref()
        })
        .expect("the ConfigMap is mounted");
    let mount = container
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .find(|m| m.name == volume.name)
        .expect("its volume is mounted in the container");
    let config_path = container
        .env
        .unwrap()
        .into_iter()
        .find(|e| e.name == "PANOPTES_CONFIG")
        .and_then(|e| e.value)
        .expect("PANOPTES_CONFIG is set");
    assert_eq!(config_path, format!("{}/clusters.toml", mount.mount_path));

    let kustomization = std::fs::read_to_string(manifests().join("kustomization.yaml")).unwrap();
    for file in [
        "serviceaccount.yaml",
        "clusterrole.yaml",
        "clusterrolebinding.yaml",
        "configmap.yaml",
        "deployment.yaml",
    ] {
        assert!(
            kustomization.contains(file),
            "kustomization.yaml lists {file}"
        );
    }
}

/// The sharded overlay's files, as `sharded/<name>`.
const SHARDED_FILES: [&str; 4] = [
    "sharding-role.yaml",
    "poddisruptionbudget.yaml",
    "deployment-patch.yaml",
    "configmap-patch.yaml",
];

fn leases() -> ResourceRef {
    ResourceRef {
        group: "coordination.k8s.io".into(),
        version: "v1".into(),
        plural: "leases".into(),
    }
}

#[test]
fn the_sharded_variant_is_an_overlay_on_the_base() {
    let kustomization =
        std::fs::read_to_string(manifests().join("sharded/kustomization.yaml")).unwrap();
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&kustomization).expect("kustomization parses");
    let listed: Vec<String> = ["resources", "patches"]
        .iter()
        .flat_map(|key| doc[*key].as_sequence().cloned().unwrap_or_default())
        .filter_map(|entry| match entry {
            serde_yaml::Value::String(s) => Some(s),
            mapping => mapping["path"].as_str().map(str::to_string),
        })
        .collect();
    assert!(
        listed.iter().any(|s| s == "../"),
        "the base is a resource: {listed:?}"
    );
    for file in SHARDED_FILES {
        assert!(
            listed.iter().any(|s| s == file),
            "sharded/kustomization.yaml lists {file}"
        );
        assert!(
            manifests().join("sharded").join(file).is_file(),
            "{file} exists"
        );
    }
}

#[test]
fn the_sharded_deployment_runs_several_replicas_each_named_after_its_pod() {
    let base: Deployment = parse("deployment.yaml");
    let patch: Deployment = parse("sharded/deployment-patch.yaml");
    assert_eq!(
        (&patch.metadata.name, &patch.metadata.namespace),
        (&base.metadata.name, &base.metadata.namespace),
        "the patch targets the base Deployment"
    );
    let spec = patch.spec;
    assert!(
        spec.replicas.unwrap_or(1) >= 2,
        "sharding means several replicas"
    );
    assert_eq!(spec.selector, base.spec.selector);
    let pod = spec.template.spec.expect("a pod spec");
    let (_, base_container) = deployment_container();
    let container = pod
        .containers
        .iter()
        .find(|c| c.name == base_container.name)
        .expect("the patch names the base container");
    let identity = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "PANOPTES__SHARDING__IDENTITY")
        .expect("PANOPTES__SHARDING__IDENTITY is set");
    let field = identity
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("from the downward API");
    assert_eq!(
        field.field_path, "metadata.name",
        "the pod name is the identity"
    );
    assert!(
        pod.termination_grace_period_seconds.unwrap_or(30) >= 10,
        "time for a clean handoff"
    );
}

#[test]
fn the_sharded_config_loads_with_sharding_on_and_takes_its_identity_from_the_environment() {
    let base: ConfigMap = parse("configmap.yaml");
    let patch: ConfigMap = parse("sharded/configmap-patch.yaml");
    assert_eq!(
        (&patch.metadata.name, &patch.metadata.namespace),
        (&base.metadata.name, &base.metadata.namespace)
    );
    let config = configmap_config_from(
        "sharded/configmap-patch.yaml",
        [("PANOPTES__SHARDING__IDENTITY", "panoptes-7d9f-abcde")],
    );
    let sharding = config.sharding.as_ref().expect("[sharding] is enabled");
    assert_eq!(sharding.identity, "panoptes-7d9f-abcde");
    assert!(
        config.clusters.iter().any(|c| c.name == sharding.cluster),
        "the home cluster is one of [[clusters]]"
    );
    assert!(config.runtime.metrics_addr.ip().is_unspecified());
    let role: ClusterRole = parse("clusterrole.yaml");
    let rules = role.rules.unwrap_or_default();
    for watch in &config.watches {
        assert!(
            allows(&rules, &watch.resource, "watch"),
            "clusterrole.yaml covers {}",
            watch.resource
        );
    }

    // The Leases live where the sharding Role grants them.
    let text = std::fs::read_to_string(manifests().join("sharded/sharding-role.yaml")).unwrap();
    let mut documents = serde_yaml::Deserializer::from_str(&text);
    let role = Role::deserialize(documents.next().expect("a Role")).expect("the Role parses");
    assert_eq!(
        role.metadata.namespace.as_deref(),
        Some(sharding.namespace.as_str())
    );
}

#[test]
fn the_sharding_role_grants_every_lease_verb_and_nothing_else() {
    let text = std::fs::read_to_string(manifests().join("sharded/sharding-role.yaml")).unwrap();
    let mut documents = serde_yaml::Deserializer::from_str(&text);
    let role = Role::deserialize(documents.next().expect("a Role")).expect("the Role parses");
    let binding = RoleBinding::deserialize(documents.next().expect("a RoleBinding"))
        .expect("the RoleBinding parses");
    assert!(documents.next().is_none(), "two objects");
    let rules = role.rules.clone().unwrap_or_default();
    for verb in ["get", "list", "watch", "create", "update", "delete"] {
        assert!(allows(&rules, &leases(), verb), "leases: {verb}");
    }
    for rule in &rules {
        assert_eq!(rule.resources.as_deref(), Some(&["leases".to_string()][..]));
    }
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
    assert_eq!(binding.metadata.namespace, role.metadata.namespace);
    let account: ServiceAccount = parse("serviceaccount.yaml");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            Some(subject.name.as_str()),
            subject.namespace.as_deref()
        ),
        (
            "ServiceAccount",
            account.metadata.name.as_deref(),
            account.metadata.namespace.as_deref()
        )
    );
}

#[test]
fn the_disruption_budget_covers_the_replicas_and_lets_one_go_at_a_time() {
    let pdb: PodDisruptionBudget = parse("sharded/poddisruptionbudget.yaml");
    let spec = pdb.spec.expect("a spec");
    let (deployment, _) = deployment_container();
    let pod_labels = deployment.spec.template.metadata.unwrap().labels.unwrap();
    let selector = spec
        .selector
        .expect("a selector")
        .match_labels
        .expect("matchLabels");
    for (key, value) in &selector {
        assert_eq!(
            pod_labels.get(key),
            Some(value),
            "the budget selects the pods"
        );
    }
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
}
