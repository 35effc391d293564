//! Release signing for `scripts/release` (not part of the strata binary).
//!
//! ```text
//! cargo run --example release_sign -- gen-key PRIVATE_KEY_FILE PUBLIC_KEY_FILE
//! cargo run --example release_sign -- sign PRIVATE_KEY_FILE ARCHIVE.tar.gz
//! ```
//!
//! Keys are zipsign's format: the private file holds the 64-byte ed25519
//! key pair, the public file the 32-byte public key. `sign` appends the
//! signature to the `.tar.gz` in place (bound to the archive's file name, so
//! a renamed archive no longer verifies). The private key may also come from
//! `STRATA_RELEASE_KEY` (the 128 hex digits of the key pair) with `-` as the file.

use std::fs::{self, File, OpenOptions};
use std::io::{Cursor, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use zipsign_api::sign::copy_and_sign_tar;
use zipsign_api::verify::verify_tar;
use zipsign_api::{KEYPAIR_LENGTH, SigningKey};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["gen-key", private, public] => gen_key(Path::new(private), Path::new(public)),
        ["sign", key, archive] => sign(key, Path::new(archive)),
        _ => {
            Err("usage: release_sign gen-key PRIVATE PUBLIC | sign PRIVATE|- ARCHIVE.tar.gz".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("release_sign: {e}");
            ExitCode::FAILURE
        }
    }
}

fn gen_key(private: &Path, public: &Path) -> Result<(), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    // The private key is created 0600 and never overwritten.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(private)
        .map_err(|e| format!("{}: {e}", private.display()))?;
    file.write_all(&key.to_keypair_bytes())
        .map_err(|e| format!("{}: {e}", private.display()))?;
    fs::write(public, key.verifying_key().to_bytes())
        .map_err(|e| format!("{}: {e}", public.display()))?;
    println!("{}", hex_encode(&key.verifying_key().to_bytes()));
    Ok(())
}

fn read_key(source: &str) -> Result<SigningKey, String> {
    let bytes = if source == "-" {
        let hex = std::env::var("STRATA_RELEASE_KEY")
            .map_err(|_| "STRATA_RELEASE_KEY is not set".to_string())?;
        hex_decode(hex.trim()).ok_or("STRATA_RELEASE_KEY is not hex")?
    } else {
        fs::read(source).map_err(|e| format!("{source}: {e}"))?
    };
    let pair: [u8; KEYPAIR_LENGTH] = bytes
        .try_into()
        .map_err(|_| format!("the private key must be {KEYPAIR_LENGTH} bytes"))?;
    SigningKey::from_keypair_bytes(&pair).map_err(|e| format!("not an ed25519 key pair: {e}"))
}

fn sign(key: &str, archive: &Path) -> Result<(), String> {
    let key = read_key(key)?;
    let signed_key = key.clone();
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the archive name must be UTF-8")?;
    let data = fs::read(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let mut signed = Cursor::new(Vec::new());
    copy_and_sign_tar(
        &mut Cursor::new(data),
        &mut signed,
        &[key],
        Some(name.as_bytes()),
    )
    .map_err(|e| format!("signing {}: {e}", archive.display()))?;
    // Check the result as strata will, before it replaces the archive.
    verify_tar(
        &mut Cursor::new(signed.get_ref().as_slice()),
        &[key_public(&signed_key)],
        Some(name.as_bytes()),
    )
    .map_err(|e| format!("the signed archive does not verify: {e}"))?;
    println!(
        "signed {} with key {}",
        archive.display(),
        hex_encode(&key_public(&signed_key).to_bytes())
    );
    let tmp = archive.with_extension("signing");
    File::create(&tmp)
        .and_then(|mut f| f.write_all(signed.get_ref()).and_then(|()| f.sync_all()))
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, archive).map_err(|e| format!("{}: {e}", archive.display()))
}

fn key_public(key: &SigningKey) -> zipsign_api::VerifyingKey {
    key.verifying_key()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}
