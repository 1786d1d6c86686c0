//! The webhook's certificates, managed by the operator: a CA and a serving
//! certificate signed by it, kept in a Secret of the operator's namespace
//! and rotated before they expire; the `caBundle` of the
//! ValidatingWebhookConfiguration kept equal to the CAs clients must trust.
//!
//! * **Who writes.** Only the leader ([`CertManager::run`] runs under the
//!   lease, beside the controller); every replica serves, reloading the
//!   Secret's `tls.crt`/`tls.key` into its TLS server as soon as it changes
//!   ([`CertStore`], [`watch_secret`]): no restart.
//! * **Lifetimes** (decided here): CA 5 years, renewed when less than one
//!   year is left; serving certificate 90 days, renewed when less than 30
//!   days are left, or when the names it must carry change.
//! * **No moment without trust.** A new CA first joins the bundle (old and
//!   new CA, published in the webhook configuration) while the old serving
//!   certificate stays in use; only once the bundle is published is a
//!   serving certificate issued by the new CA. The old CA leaves the bundle
//!   when it expires.
//! * **cert-manager.** With `--webhook-certs external` (chart value
//!   `webhook.certManager.enabled`) the operator only reads the Secret
//!   (cert-manager's layout is the same: `tls.crt`, `tls.key`, `ca.crt`)
//!   and cert-manager's CA injector keeps `caBundle`.
//!
//! Planning is pure ([`plan`], [`Material::apply`]) and tested with a
//! clock; the API calls are few (one Secret, one webhook configuration).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::watcher;
use linx_crds::watch::backoff;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use crate::Metrics;

const DAY: i64 = 86_400;

/// How long certificates live and when they are replaced (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// How long a CA is valid.
    pub ca: i64,
    /// A CA is replaced when less than this is left.
    pub ca_renew_before: i64,
    /// How long a serving certificate is valid.
    pub cert: i64,
    /// A serving certificate is replaced when less than this is left.
    pub cert_renew_before: i64,
    /// Validity starts this long before issuance (clocks differ).
    pub backdate: i64,
}

impl Lifetimes {
    /// CA 5 years (renewed with a year left), certificate 90 days
    /// (renewed with 30 days left), valid from 5 minutes before issuance.
    pub const DEFAULT: Lifetimes = Lifetimes {
        ca: 5 * 365 * DAY,
        ca_renew_before: 365 * DAY,
        cert: 90 * DAY,
        cert_renew_before: 30 * DAY,
        backdate: 300,
    };
}

const ANN: &str = "netfilter.linx.dev/";

/// Secret keys (cert-manager's names for the first three).
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
const SIGNING_CRT: &str = "signing-ca.crt";
const SIGNING_KEY: &str = "signing-ca.key";
const PREVIOUS_CRT: &str = "previous-ca.crt";

/// What goes in the Secret: the serving certificate, the CA signing it,
/// the bundle clients trust, and when each expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    pub cert_pem: String,
    pub key_pem: String,
    /// Unix time the serving certificate expires.
    pub cert_not_after: i64,
    /// Subject name of the CA that issued `cert_pem`.
    pub cert_issuer: String,
    /// DNS names and IP addresses the serving certificate carries.
    pub names: Vec<String>,
    pub ca_pem: String,
    pub ca_key_pem: String,
    /// The signing CA's subject name (unique per CA: it carries its expiry).
    pub ca_name: String,
    pub ca_not_after: i64,
    /// The CA replaced last, trusted until it expires: `(pem, not_after)`.
    pub previous_ca: Option<(String, i64)>,
}

/// One change to make, decided by [`plan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing usable stored: a new CA and serving certificate.
    Create,
    /// The CA nears its end: a new one joins the bundle.
    RotateCa,
    /// A new serving certificate (expiry, names, or a new CA published).
    Reissue,
    /// The previous CA expired: it leaves the bundle.
    DropPreviousCa,
}

/// The next step for `current` at `now` (unix seconds), if any.
/// `bundle_published`: the webhook configuration trusts `current`'s bundle.
pub fn plan(
    current: Option<&Material>,
    names: &[String],
    now: i64,
    bundle_published: bool,
    life: &Lifetimes,
) -> Option<Step> {
    let Some(m) = current else {
        return Some(Step::Create);
    };
    if m.ca_not_after <= now {
        return Some(Step::Create);
    }
    if m.ca_not_after - now < life.ca_renew_before && m.previous_ca.is_none() {
        return Some(Step::RotateCa);
    }
    let stale = m.cert_not_after - now < life.cert_renew_before || m.names != names;
    let new_ca = m.cert_issuer != m.ca_name;
    // A certificate from a CA clients do not trust yet would be refused.
    if (stale || new_ca) && (!new_ca || bundle_published) {
        return Some(Step::Reissue);
    }
    if m.previous_ca.as_ref().is_some_and(|(_, t)| *t <= now) {
        return Some(Step::DropPreviousCa);
    }
    None
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn ca_params(name: &str, not_before: i64, not_after: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = at(not_before);
    p.not_after = at(not_after);
    p
}

/// A certificate error, as text (rcgen's errors are not `Send` + `'static` friendly enough to carry).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CertError(String);

fn e(err: impl std::fmt::Display) -> CertError {
    CertError(err.to_string())
}

/// A new CA valid from `now`: `(pem, key pem, name, not_after)`.
fn new_ca(now: i64, life: &Lifetimes) -> Result<(String, String, String, i64), CertError> {
    let not_after = now + life.ca;
    let name = format!("linx-operator webhook CA {not_after}");
    let key = KeyPair::generate().map_err(e)?;
    let cert = ca_params(&name, now - life.backdate, not_after)
        .self_signed(&key)
        .map_err(e)?;
    Ok((cert.pem(), key.serialize_pem(), name, not_after))
}

impl Material {
    /// `self` after `step` (or new material for [`Step::Create`]).
    pub fn apply(
        current: Option<&Material>,
        step: Step,
        names: &[String],
        now: i64,
        life: &Lifetimes,
    ) -> Result<Material, CertError> {
        let mut m = match (step, current) {
            (Step::Create, _) | (_, None) => {
                let (ca_pem, ca_key_pem, ca_name, ca_not_after) = new_ca(now, life)?;
                Material {
                    cert_pem: String::new(),
                    key_pem: String::new(),
                    cert_not_after: 0,
                    cert_issuer: String::new(),
                    names: Vec::new(),
                    ca_pem,
                    ca_key_pem,
                    ca_name,
                    ca_not_after,
                    previous_ca: None,
                }
            }
            (_, Some(m)) => m.clone(),
        };
        match step {
            Step::Create | Step::Reissue => m.issue(names, now, life)?,
            Step::RotateCa => {
                let (ca_pem, ca_key_pem, ca_name, ca_not_after) = new_ca(now, life)?;
                m.previous_ca = Some((std::mem::take(&mut m.ca_pem), m.ca_not_after));
                m.ca_pem = ca_pem;
                m.ca_key_pem = ca_key_pem;
                m.ca_name = ca_name;
                m.ca_not_after = ca_not_after;
            }
            Step::DropPreviousCa => m.previous_ca = None,
        }
        Ok(m)
    }

    /// A serving certificate for `names` from the signing CA.
    fn issue(&mut self, names: &[String], now: i64, life: &Lifetimes) -> Result<(), CertError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).map_err(e)?;
        // Only the name, key usages and key matter to the issuer.
        let params = ca_params(&self.ca_name, now, self.ca_not_after);
        let issuer = Issuer::new(params, ca_key);
        let key = KeyPair::generate().map_err(e)?;
        let mut p = CertificateParams::new(names.to_vec()).map_err(e)?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().map_or("linx-operator", |n| n.as_str()),
        );
        p.distinguished_name = dn;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let not_after = (now + life.cert).min(self.ca_not_after);
        p.not_before = at(now - life.backdate);
        p.not_after = at(not_after);
        let cert = p.signed_by(&key, &issuer).map_err(e)?;
        self.cert_pem = cert.pem();
        self.key_pem = key.serialize_pem();
        self.cert_not_after = not_after;
        self.cert_issuer = self.ca_name.clone();
        self.names = names.to_vec();
        Ok(())
    }

    /// The CAs clients trust: the signing CA, and the previous one while
    /// it is valid.
    pub fn bundle(&self) -> String {
        let mut b = self.ca_pem.clone();
        if let Some((prev, _)) = &self.previous_ca {
            b.push_str(prev);
        }
        b
    }

    /// The Secret holding this material.
    pub fn to_secret(&self, name: &str, namespace: &str) -> Secret {
        let mut data = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
        };
        put(TLS_CRT, &self.cert_pem);
        put(TLS_KEY, &self.key_pem);
        put(CA_CRT, &self.bundle());
        put(SIGNING_CRT, &self.ca_pem);
        put(SIGNING_KEY, &self.ca_key_pem);
        if let Some((prev, _)) = &self.previous_ca {
            put(PREVIOUS_CRT, prev);
        }
        let mut ann = BTreeMap::new();
        let mut note = |k: &str, v: String| {
            ann.insert(format!("{ANN}{k}"), v);
        };
        note("cert-not-after", self.cert_not_after.to_string());
        note("cert-issuer", self.cert_issuer.clone());
        note("names", self.names.join(","));
        note("ca-name", self.ca_name.clone());
        note("ca-not-after", self.ca_not_after.to_string());
        if let Some((_, t)) = &self.previous_ca {
            note("previous-ca-not-after", t.to_string());
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/name".into(), "linx".into()),
                    ("app.kubernetes.io/component".into(), "operator".into()),
                ])),
                annotations: Some(ann),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(data),
            ..Default::default()
        }
    }

    /// The material a Secret written by [`Material::to_secret`] holds;
    /// `None` for anything else (then it is made anew).
    pub fn from_secret(s: &Secret) -> Option<Material> {
        let data = s.data.as_ref()?;
        let text = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
        let ann = s.metadata.annotations.as_ref()?;
        let note = |k: &str| ann.get(&format!("{ANN}{k}")).cloned();
        let num = |k: &str| note(k)?.parse::<i64>().ok();
        let previous_ca = match (text(PREVIOUS_CRT), num("previous-ca-not-after")) {
            (Some(p), Some(t)) => Some((p, t)),
            _ => None,
        };
        Some(Material {
            cert_pem: text(TLS_CRT)?,
            key_pem: text(TLS_KEY)?,
            cert_not_after: num("cert-not-after")?,
            cert_issuer: note("cert-issuer")?,
            names: note("names")?
                .split(',')
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect(),
            ca_pem: text(SIGNING_CRT)?,
            ca_key_pem: text(SIGNING_KEY)?,
            ca_name: note("ca-name")?,
            ca_not_after: num("ca-not-after")?,
            previous_ca,
        })
    }
}

/// The serving certificate every TLS handshake gets; replaced in place.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    provider: Arc<CryptoProvider>,
}

impl Default for CertStore {
    fn default() -> Self {
        CertStore {
            current: RwLock::new(None),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }
}

impl CertStore {
    /// Serves `cert_pem` (chain) with `key_pem` from the next handshake on.
    pub fn load(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), CertError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|err| CertError(format!("tls.crt: {err}")))?;
        if chain.is_empty() {
            return Err(CertError("tls.crt holds no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|err| CertError(format!("tls.key: {err}")))?;
        let ck = CertifiedKey::from_der(chain, key, &self.provider).map_err(e)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(ck));
        Ok(())
    }

    /// Whether a certificate is loaded (the webhook is ready to serve).
    pub fn ready(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// A TLS server configuration resolving through this store.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, CertError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(e)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Loads the Secret's certificate into `store` whenever it changes
/// (every replica runs this). Returns when the watch ends.
pub async fn watch_secret(
    secrets: Api<Secret>,
    name: String,
    store: Arc<CertStore>,
    metrics: Metrics,
) {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(backoff(watcher::watcher(secrets, cfg)));
    while let Some(ev) = events.next().await {
        let secret = match ev {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => s,
            Ok(_) => continue,
            Err(err) => {
                warn!(error = %err, secret = %name, "watching the webhook's Secret");
                continue;
            }
        };
        let data = secret.data.unwrap_or_default();
        let (Some(crt), Some(key)) = (data.get(TLS_CRT), data.get(TLS_KEY)) else {
            continue;
        };
        match store.load(&crt.0, &key.0) {
            Ok(()) => {
                let expiry = secret
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(&format!("{ANN}cert-not-after")))
                    .and_then(|t| t.parse::<i64>().ok())
                    .unwrap_or(0);
                metrics.cert_expiry.set(expiry);
                info!(secret = %name, "serving certificate loaded");
            }
            Err(err) => warn!(error = %err, secret = %name, "serving certificate not loaded"),
        }
    }
}

/// Where the leader keeps the certificates and whom it tells.
#[derive(Clone, Debug)]
pub struct CertConfig {
    /// The Secret (in the operator's namespace).
    pub secret: String,
    /// The ValidatingWebhookConfiguration whose `caBundle` is kept current.
    pub webhook_configuration: String,
    /// Names the serving certificate carries (DNS names, IP addresses).
    pub names: Vec<String>,
}

/// The leader's certificate writer.
pub struct CertManager {
    pub secrets: Api<Secret>,
    pub configurations: Api<ValidatingWebhookConfiguration>,
    pub config: CertConfig,
    pub namespace: String,
    pub lifetimes: Lifetimes,
}

/// Writing the Secret or the webhook configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum CertManagerError {
    #[error("Secret {0}: {1}")]
    Secret(String, #[source] kube::Error),
    #[error("ValidatingWebhookConfiguration {0}: {1}")]
    Configuration(String, #[source] kube::Error),
    #[error("generating certificates: {0}")]
    Generate(#[from] CertError),
}

/// How often the leader re-checks expiry and the bundle.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

impl CertManager {
    /// One pass at `now`: at most one [`Step`] stored, then the bundle
    /// published. Returns the material now stored.
    pub async fn step(&self, now: i64) -> Result<Material, CertManagerError> {
        let name = &self.config.secret;
        let secret_err = |err| CertManagerError::Secret(name.clone(), err);
        let stored = self.secrets.get_opt(name).await.map_err(secret_err)?;
        let current = stored.as_ref().and_then(Material::from_secret);
        let vwc_name = &self.config.webhook_configuration;
        let vwc_err = |err| CertManagerError::Configuration(vwc_name.clone(), err);
        let mut vwc = self
            .configurations
            .get_opt(vwc_name)
            .await
            .map_err(vwc_err)?;
        let published = |m: &Material| {
            let want = ByteString(m.bundle().into_bytes());
            vwc.as_ref().is_some_and(|v| {
                let hooks = v.webhooks.as_deref().unwrap_or_default();
                !hooks.is_empty()
                    && hooks
                        .iter()
                        .all(|w| w.client_config.ca_bundle.as_ref() == Some(&want))
            })
        };
        let names = &self.config.names;
        let life = &self.lifetimes;
        let is_published = current.as_ref().is_some_and(published);
        let material = match plan(current.as_ref(), names, now, is_published, life) {
            None => current.expect("plan has a step when nothing is stored"),
            Some(step) => {
                let m = Material::apply(current.as_ref(), step, names, now, life)?;
                let mut s = m.to_secret(name, &self.namespace);
                let pp = PostParams::default();
                match stored {
                    // Compare-and-swap: another writer in between makes this fail, and the next pass re-plans.
                    Some(old) => {
                        s.metadata.resource_version = old.metadata.resource_version;
                        self.secrets
                            .replace(name, &pp, &s)
                            .await
                            .map_err(secret_err)?;
                    }
                    None => {
                        self.secrets.create(&pp, &s).await.map_err(secret_err)?;
                    }
                }
                info!(secret = %name, ?step, "webhook certificates stored");
                m
            }
        };
        if !published(&material) {
            if let Some(v) = vwc.as_mut() {
                let bundle = ByteString(material.bundle().into_bytes());
                for w in v.webhooks.iter_mut().flatten() {
                    w.client_config.ca_bundle = Some(bundle.clone());
                }
                self.configurations
                    .replace(vwc_name, &PostParams::default(), v)
                    .await
                    .map_err(vwc_err)?;
                info!(configuration = %vwc_name, "caBundle updated");
            }
        }
        Ok(material)
    }

    /// Keeps certificates and `caBundle` current until the task is dropped:
    /// a pass every [`CHECK_EVERY`], and at once when the webhook
    /// configuration changes (created, or its `caBundle` overwritten).
    pub async fn run(self, metrics: Metrics) {
        let cfg = watcher::Config::default().fields(&format!(
            "metadata.name={}",
            self.config.webhook_configuration
        ));
        let mut changes =
            std::pin::pin!(backoff(watcher::watcher(self.configurations.clone(), cfg)));
        loop {
            let now = jiff::Timestamp::now().as_second();
            if let Err(err) = self.step(now).await {
                warn!(error = %err, "webhook certificates");
                metrics.error_label("certificates");
            }
            let wake = tokio::time::sleep(CHECK_EVERY);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = &mut wake => break,
                    ev = changes.next() => match ev {
                        Some(Ok(watcher::Event::Apply(_) | watcher::Event::InitDone)) => break,
                        Some(_) => continue,
                        // The stream ended: fall back to the timer.
                        None => { (&mut wake).await; break }
                    },
                }
            }
        }
    }
}
