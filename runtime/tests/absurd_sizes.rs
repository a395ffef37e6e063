//! Files that claim absurd sizes — counts near 2^64, strings and arrays of terabytes,
//! dimension products that overflow, a safetensors header length of 2^63 — are clear
//! errors, and nothing is allocated in proportion to the claim: every case runs in a child
//! process whose address space is limited to 1 GiB (`setrlimit(RLIMIT_AS)`), where such an
//! allocation would abort the child.
//!
//! The test binary re-runs itself (`current_exe`, filtered to `absurd_sizes_child`) with
//! `LAZYFORGE_ABSURD_CHILD=1` to take the child's role.

use lazyforge::source::checkpoint::OpenOptions;
use lazyforge::Device;
use std::path::Path;

const CHILD_ENV: &str = "LAZYFORGE_ABSURD_CHILD";
const LIMIT: u64 = 1 << 30;

/// A GGUF file written field by field.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn gguf(tensor_count: u64, kv_count: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(3).u64(tensor_count).u64(kv_count);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Raw {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Raw {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Raw {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// A tensor-table entry.
    fn tensor(&mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> &mut Raw {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ggml_type).u64(offset)
    }
    fn pad(&mut self, n: usize) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, n));
        std::mem::take(&mut self.0)
    }
}

/// A safetensors file: header length (as claimed), header, data.
fn safetensors(claimed_len: Option<u64>, header: &str, data: usize) -> Vec<u8> {
    let mut v = claimed_len
        .unwrap_or(header.len() as u64)
        .to_le_bytes()
        .to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend(std::iter::repeat_n(0u8, data));
    v
}

/// Every case: a name, a file name and its bytes.
fn cases() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    const F32: u32 = 0;
    const TB: u64 = 1 << 40;
    let mut c = Vec::new();
    let mut add = |name, file, bytes| c.push((name, file, bytes));
    add(
        "tensor count u64::MAX",
        "a.gguf",
        Raw::gguf(u64::MAX, 0).pad(64),
    );
    add("tensor count 2^63", "a.gguf", Raw::gguf(1 << 63, 0).pad(64));
    add(
        "metadata count u64::MAX - 1",
        "a.gguf",
        Raw::gguf(0, u64::MAX - 1).pad(64),
    );
    add(
        "metadata count 2^60 (fits u64 * entry size)",
        "a.gguf",
        Raw::gguf(0, 1 << 60).pad(64),
    );
    // A key claiming 2^62 bytes.
    add("key length 2^62", "a.gguf", {
        let mut r = Raw::gguf(0, 1);
        r.u64(1 << 62);
        r.pad(64)
    });
    // A string value claiming a terabyte.
    add("string value of 1 TB", "a.gguf", {
        let mut r = Raw::gguf(0, 1);
        r.str("general.name").u32(8).u64(TB);
        r.pad(64)
    });
    // Arrays claiming 2^61 u64s, 2^40 strings, u64::MAX u8s.
    for (name, elem, len) in [
        ("array of 2^61 u64", 10u32, 1u64 << 61),
        ("array of 2^40 strings", 8, TB),
        ("array of u64::MAX u8", 0, u64::MAX),
        ("array of 2^62 arrays", 9, 1 << 62),
    ] {
        add(name, "a.gguf", {
            let mut r = Raw::gguf(0, 1);
            r.str("tokenizer.ggml.tokens").u32(9).u32(elem).u64(len);
            r.pad(256)
        });
    }
    // Nested arrays: an array of one array claiming 2^50 strings.
    add("nested array of 2^50 strings", "a.gguf", {
        let mut r = Raw::gguf(0, 1);
        r.str("k").u32(9).u32(9).u64(1).u32(8).u64(1 << 50);
        r.pad(256)
    });
    add("dimensions whose product overflows u64", "a.gguf", {
        let mut r = Raw::gguf(1, 0);
        r.tensor("w", &[1 << 32, 1 << 32, 2], F32, 0);
        r.pad(256)
    });
    add("dimensions whose byte size overflows", "a.gguf", {
        let mut r = Raw::gguf(1, 0);
        r.tensor("w", &[1 << 62], F32, 0);
        r.pad(256)
    });
    add("a tensor of 4 TB", "a.gguf", {
        let mut r = Raw::gguf(1, 0);
        r.tensor("w", &[1 << 20, 1 << 20], F32, 0);
        r.pad(256)
    });
    add("tensor offset 2^63", "a.gguf", {
        let mut r = Raw::gguf(1, 0);
        r.tensor("w", &[8], F32, 1 << 63);
        r.pad(256)
    });
    add("n_dims u32::MAX", "a.gguf", {
        let mut r = Raw::gguf(1, 0);
        r.str("w").u32(u32::MAX);
        r.pad(256)
    });
    add("alignment 2^63", "a.gguf", {
        let mut r = Raw::gguf(1, 1);
        r.str("general.alignment").u32(10).u64(1 << 63);
        r.tensor("w", &[8], F32, 0);
        r.pad(256)
    });
    let tiny = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    add(
        "safetensors header length 2^63",
        "a.safetensors",
        safetensors(Some(1 << 63), tiny, 8),
    );
    add(
        "safetensors header length u64::MAX",
        "a.safetensors",
        safetensors(Some(u64::MAX), tiny, 8),
    );
    add(
        "safetensors header length 99 MB in a small file",
        "a.safetensors",
        safetensors(Some(99_000_000), tiny, 8),
    );
    add(
        "safetensors shape product overflows",
        "a.safetensors",
        safetensors(
            None,
            r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
            8,
        ),
    );
    add(
        "safetensors tensor of 1 EB (a consistent header, a small file)",
        "a.safetensors",
        safetensors(
            None,
            r#"{"w":{"dtype":"U8","shape":[1152921504606846976],"data_offsets":[0,1152921504606846976]}}"#,
            8,
        ),
    );
    add(
        "safetensors offsets past usize",
        "a.safetensors",
        safetensors(
            None,
            r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]}}"#,
            8,
        ),
    );
    c
}

/// What the child does with one case: open it, as mapped and read; decode everything the
/// fuzz target decodes; load every tensor. Returns the first error, or `None` if every
/// step succeeded (which is a failure for these files).
fn run_case(dir: &Path, file: &str, bytes: &[u8]) -> Option<String> {
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    lazyforge::fuzzing::gguf(bytes);
    lazyforge::fuzzing::safetensors(&[[0u8].as_slice(), bytes].concat());
    let mut first = None;
    for force_read in [false, true] {
        match OpenOptions::new().force_read(force_read).open(&path) {
            Err(e) => {
                first.get_or_insert(e.to_string());
            }
            Ok(ckpt) => {
                for t in ckpt.tensors() {
                    if let Err(e) = ckpt
                        .lazy(&t.name, Device::Cpu)
                        .and_then(|l| l.get().map(|_| ()))
                    {
                        first.get_or_insert(e.to_string());
                    }
                }
                if let Some(g) = ckpt.gguf() {
                    for (k, _) in g.metadata() {
                        if let Err(e) = g.get_string_array(k) {
                            first.get_or_insert(e.to_string());
                        }
                    }
                }
            }
        }
    }
    first
}

#[test]
fn absurd_sizes_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // Only meaningful as the child of `absurd_sizes_are_errors_under_1_gib`.
    }
    let limit = libc::rlimit {
        rlim_cur: LIMIT,
        rlim_max: LIMIT,
    };
    // SAFETY: a plain syscall on a struct we own; it changes only this process's limit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
    // The limit bites: a 2 GiB allocation fails here.
    assert!(Vec::<u8>::new().try_reserve_exact(2 << 30).is_err());
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    for (name, file, bytes) in &cases {
        match run_case(dir.path(), file, bytes) {
            Some(err) => println!("refused: {name}: {err}"),
            None => panic!("{name}: opened and loaded without an error"),
        }
    }
    println!("all {} cases refused", cases.len());
}

#[test]
fn absurd_sizes_are_errors_under_1_gib() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "absurd_sizes_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let n = cases().len();
    assert!(
        stdout.contains(&format!("all {n} cases refused")),
        "{stdout}\n{stderr}"
    );
    // Each error says what is wrong with the file.
    for line in stdout.lines().filter(|l| l.starts_with("refused: ")) {
        assert!(
            line.contains("a.gguf") || line.contains("a.safetensors"),
            "{line}"
        );
    }
}
