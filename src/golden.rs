//! Golden files for unit tests: rendered text compared with a file of the repository.

/// Compares `rendered` with the file at `relative` (to the repository), or rewrites it when
/// `UPDATE_GOLDEN=1` (after an intended change; review the diff).
pub(crate) fn assert_golden(relative: &str, rendered: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("a file in a directory")).unwrap();
        std::fs::write(&path, rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(rendered, expected, "{} differs", path.display());
}
