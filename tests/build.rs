//! Builds the guest components the tests run, with cargo itself, and exports
//! their paths as `DOCK_PROBE_WASM` and `DOCK_SPIN_APP_WASM`.
//!
//! The nested cargo uses its own target directory (`target/guest`): the outer
//! build holds the lock on the normal one, so sharing it would deadlock.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("workspace root").to_path_buf();
    let target_dir = root.join("target").join("guest");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    for path in [
        "tests/components/probe/src",
        "tests/components/probe/Cargo.toml",
        "spin-app/src",
        "spin-app/Cargo.toml",
        "spin-app/openapi.json",
        "core/src",
        "core/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }

    let output = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            // spin.toml's profile: the tests run the component as shipped.
            "--profile",
            "component",
            "--target",
            "wasm32-wasip2",
            "-p",
            "dock-test-probe",
            "-p",
            "dock-spin-app",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("run cargo to build the guest components");
    if !output.status.success() {
        panic!(
            "building the guest components failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let out = target_dir.join("wasm32-wasip2").join("component");
    for (var, file) in [
        ("DOCK_PROBE_WASM", "dock_test_probe.wasm"),
        ("DOCK_SPIN_APP_WASM", "dock_spin_app.wasm"),
    ] {
        let path = out.join(file);
        assert!(path.exists(), "{} was not produced", path.display());
        println!("cargo:rustc-env={var}={}", path.display());
    }
    println!("cargo:rustc-env=DOCK_WORKSPACE_ROOT={}", root.display());
}
