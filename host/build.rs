//! Link-time set-up of the `labelhost` binary: keep `libtorch_cuda` linked (the linker's
//! `--as-needed` would drop it, and then CUDA is never used) and record an rpath to the
//! LibTorch folder so the binary starts without `LD_LIBRARY_PATH`.

use std::{env, path::PathBuf};

fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Ok(dir) = env::var("LIBTORCH") {
        return Some(PathBuf::from(dir).join("lib"));
    }
    // torch-sys with LIBTORCH_USE_PYTORCH=1 asks the python on PATH; do the same.
    let out =
        std::process::Command::new(env::var("PYTHON_SYS_EXECUTABLE").unwrap_or("python3".into()))
            .args([
                "-c",
                "import torch,os;print(os.path.join(os.path.dirname(torch.__file__),'lib'))",
            ])
            .output()
            .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(dir.trim());
    dir.is_dir().then_some(dir)
}

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-env-changed=PYTHON_SYS_EXECUTABLE");
    let Some(lib) = libtorch_lib_dir() else {
        println!("cargo:warning=LibTorch not found; run scripts/setup.sh");
        return;
    };
    let cuda = lib.join("libtorch_cuda.so").exists();
    // Every linked target of this package: the binary, unit tests, benches.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
