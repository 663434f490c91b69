//! The `Widget` custom resource (`widgets.panoptes.example.com/v1`, namespaced, short name
//! `wg`) and the step that installs its CustomResourceDefinition on a cluster where it is
//! missing.
//!
//! A Widget asks for `spec.replicas` ConfigMaps; the controller reports how many exist in
//! `status.readyReplicas` (through the `/status` subresource, so a user's `kubectl apply`
//! of the spec never overwrites it).
//!
//! Installing the CRD is a create when a GET answers 404 (an existing definition, possibly
//! newer, is left alone), then a wait until the API server reports it `Established`: only then
//! does it serve `/apis/panoptes.example.com/v1/.../widgets`, and a watch opened earlier
//! would fail with 404 and back off.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::{Api, CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The finalizer the controller puts on every Widget, so that deleting one runs its cleanup
/// before the object goes.
pub const FINALIZER: &str = "panoptes.example.com/cleanup";

/// What a Widget asks for.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "panoptes.example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    shortname = "wg",
    status = "WidgetStatus",
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#
)]
pub struct WidgetSpec {
    /// How many ConfigMaps the Widget owns.
    pub replicas: u32,
}

/// What the controller observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    /// The owned ConfigMaps that exist.
    pub ready_replicas: u32,
    /// The `metadata.generation` this status describes.
    pub observed_generation: Option<i64>,
}

/// Installing the CRD failed.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The GET of the definition failed.
    #[error("reading CustomResourceDefinition {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The API server refused to create it.
    #[error("creating CustomResourceDefinition {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// It exists but the API server did not serve it in time.
    #[error("CustomResourceDefinition {name} was not Established within {waited:?}")]
    NotEstablished { name: String, waited: Duration },
}

/// What [`ensure_crd`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdOutcome {
    /// The definition was there already.
    Present,
    /// It was missing and was created.
    Created,
}

/// How long a fresh CRD may take to be served.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Installs the Widget CRD on the cluster `client` reaches unless it is there, and waits
/// until it is `Established`.
pub async fn ensure_crd(client: &kube::Client) -> Result<CrdOutcome, CrdError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = Widget::crd_name().to_string();
    let existing = crds.get_opt(&name).await.map_err(|source| CrdError::Read {
        name: name.clone(),
        source,
    })?;
    let outcome = match existing {
        Some(_) => CrdOutcome::Present,
        None => match crds.create(&PostParams::default(), &Widget::crd()).await {
            Ok(_) => CrdOutcome::Created,
            // Another controller replica created it between our GET and POST.
            Err(kube::Error::Api(status)) if status.code == 409 => CrdOutcome::Present,
            Err(source) => return Err(CrdError::Create { name, source }),
        },
    };
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    loop {
        let crd = crds.get_opt(&name).await.map_err(|source| CrdError::Read {
            name: name.clone(),
            source,
        })?;
        if crd.as_ref().is_some_and(established) {
            return Ok(outcome);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CrdError::NotEstablished {
                name,
                waited: ESTABLISH_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}
