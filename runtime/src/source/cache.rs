//! Where lazyforge keeps downloaded model files.

use std::path::PathBuf;

/// The cache directory: `$LAZYFORGE_CACHE`, else `$XDG_CACHE_HOME/lazyforge`, else
/// `$HOME/.cache/lazyforge` (else `./.cache/lazyforge` when no home is set). Not created here.
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("LAZYFORGE_CACHE") {
        return dir;
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return dir.join("lazyforge");
    }
    var("HOME")
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("lazyforge")
}
