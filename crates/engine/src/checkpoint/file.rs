//! Checkpoint storage in a local (or shared, mounted) directory.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{CheckpointError, CheckpointStorage};

pub struct FileCheckpointStorage {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl FileCheckpointStorage {
    pub fn open(root: &Path) -> Result<Self, CheckpointError> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

impl CheckpointStorage for FileCheckpointStorage {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
        let path = self.path(name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        // The rename is durable only once the directory entry is.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))?;
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, CheckpointError> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, CheckpointError> {
        // Names may contain one '/', separating a folder from a file.
        let (dir, file_prefix) = match prefix.rsplit_once('/') {
            Some((dir, rest)) => (self.root.join(dir), rest),
            None => (self.root.clone(), prefix),
        };
        let folder = prefix
            .rsplit_once('/')
            .map(|(d, _)| format!("{d}/"))
            .unwrap_or_default();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(file_prefix) && !n.ends_with(".tmp"))
            .map(|n| format!("{folder}{n}"))
            .collect();
        names.sort();
        Ok(names)
    }

    fn delete(&self, name: &str) -> Result<(), CheckpointError> {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileCheckpointStorage::open(dir.path()).unwrap();
        s.put("job/chk-2", b"two").unwrap();
        s.put("job/chk-1", b"one").unwrap();
        s.put("job/savepoints/x", b"sp").unwrap();
        assert_eq!(s.get("job/chk-1").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(s.list("job/chk-").unwrap(), vec!["job/chk-1", "job/chk-2"]);
        s.delete("job/chk-1").unwrap();
        assert_eq!(s.list("job/chk-").unwrap(), vec!["job/chk-2"]);
        assert_eq!(s.get("job/nothing").unwrap(), None);
        assert!(s.list("other/").unwrap().is_empty());
    }
}
