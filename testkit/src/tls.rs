//! Certificates for a test's secured listener, made by the test itself: a
//! certificate authority and one server certificate it signs, for the names
//! clients dial (`localhost`, `127.0.0.1`).

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

use crate::error::HarnessError;

/// A CA certificate and a server key and certificate it signed, as PEM.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The CA certificate: what clients trust (`ssl.ca.location`).
    pub ca_pem: String,
    /// The server's certificate.
    pub cert_pem: String,
    /// The server's private key, PKCS#8.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// A fresh CA and a server certificate for `localhost` and `127.0.0.1`,
    /// valid for a day.
    pub fn generate() -> Result<TlsMaterial, HarnessError> {
        make().map_err(|e| HarnessError::Tls(e.to_string()))
    }

    /// Key then certificate in one PEM file: Kafka's `ssl.keystore.type=PEM`.
    pub fn keystore_pem(&self) -> String {
        format!("{}{}", self.key_pem, self.cert_pem)
    }
}

fn make() -> Result<TlsMaterial, openssl::error::ErrorStack> {
    let ca_key = key()?;
    let ca = {
        let mut b = builder("saga-test-ca", &ca_key)?;
        b.set_issuer_name(name("saga-test-ca")?.as_ref())?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        b.sign(&ca_key, MessageDigest::sha256())?;
        b.build()
    };
    let server_key = key()?;
    let server = {
        let mut b = builder("localhost", &server_key)?;
        b.set_issuer_name(ca.subject_name())?;
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(Some(&ca), None))?;
        b.append_extension(san)?;
        b.sign(&ca_key, MessageDigest::sha256())?;
        b.build()
    };
    let pem = |x: &X509| x.to_pem().map(|p| String::from_utf8_lossy(&p).into_owned());
    Ok(TlsMaterial {
        ca_pem: pem(&ca)?,
        cert_pem: pem(&server)?,
        key_pem: String::from_utf8_lossy(&server_key.private_key_to_pem_pkcs8()?).into_owned(),
    })
}

fn key() -> Result<PKey<Private>, openssl::error::ErrorStack> {
    PKey::from_rsa(Rsa::generate(2048)?)
}

fn name(cn: &str) -> Result<openssl::x509::X509Name, openssl::error::ErrorStack> {
    let mut n = X509NameBuilder::new()?;
    n.append_entry_by_text("CN", cn)?;
    Ok(n.build())
}

fn builder(cn: &str, key: &PKey<Private>) -> Result<openssl::x509::X509Builder, openssl::error::ErrorStack> {
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    b.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    b.set_subject_name(name(cn)?.as_ref())?;
    b.set_pubkey(key)?;
    b.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(1)?.as_ref())?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use openssl::x509::X509;

    #[test]
    fn the_server_certificate_is_signed_by_the_ca_and_names_localhost() {
        let m = super::TlsMaterial::generate().expect("certificates");
        let ca = X509::from_pem(m.ca_pem.as_bytes()).expect("ca");
        let server = X509::from_pem(m.cert_pem.as_bytes()).expect("server");
        assert!(server.verify(&ca.public_key().expect("ca key")).expect("verify"));
        let sans = server.subject_alt_names().expect("subject alternative names");
        assert!(sans.iter().any(|n| n.dnsname() == Some("localhost")));
        assert!(m.keystore_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
