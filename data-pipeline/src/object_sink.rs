//! [`ObjectSink`]: one object written in parts as it is produced (`std::io::Write`), for outputs
//! too large to hold in memory (`ecgfm embed` over millions of windows). A multipart upload on
//! object stores, a temporary file renamed into place on local disks: readers see the old
//! object or the whole new one, never a part, and a sink dropped without `finish` leaves nothing
//! (it aborts the upload, whose parts a store would otherwise keep, and bill, until a lifecycle
//! rule removes them).

use std::io;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::error::DataError;
use crate::store::{block_on, runtime, shown, store_error_at};

/// Parts uploading at once: with 5 MiB parts, at most 40 MiB of the object is in memory.
const PARTS_IN_FLIGHT: usize = 8;

/// A writer of the object at `location`; call [`ObjectSink::finish`] to publish it.
pub struct ObjectSink {
    /// `None` once finished.
    upload: Option<WriteMultipart>,
    /// The object, as errors name it.
    shown: String,
}

impl ObjectSink {
    /// Starts writing the object at `location` of `store`.
    pub fn create(store: &dyn ObjectStore, location: &Path) -> Result<Self, DataError> {
        let shown = shown(store, location);
        let upload =
            block_on(store.put_multipart(location)).map_err(store_error_at(shown.clone()))?;
        Ok(ObjectSink {
            upload: Some(WriteMultipart::new(upload)),
            shown,
        })
    }

    /// Uploads what is left and publishes the object.
    pub fn finish(mut self) -> Result<(), DataError> {
        let upload = self.upload.take().expect("a sink is finished once");
        block_on(upload.finish())
            .map(|_| ())
            .map_err(store_error_at(self.shown.clone()))
    }

    fn upload(&mut self) -> &mut WriteMultipart {
        self.upload.as_mut().expect("not finished")
    }
}

impl Drop for ObjectSink {
    /// Aborts an unfinished upload (from synchronous code only, as the sink is used: inside an
    /// async runtime it cannot wait, and the store's own clean-up is all there is).
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        // An abort that fails (the store unreachable) leaves what the store's clean-up removes.
        let _ = block_on(upload.abort());
    }
}

impl io::Write for ObjectSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        block_on(self.upload().wait_for_capacity(PARTS_IN_FLIGHT)).map_err(io::Error::other)?;
        // A full part starts uploading on the I/O runtime.
        let _runtime = runtime().enter();
        self.upload().write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::open_url;
    use std::io::Write;

    #[test]
    fn the_object_appears_whole_on_finish_and_not_before() {
        let dir = std::env::temp_dir().join(format!("ecgfm-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("out.bin");
        let (store, location) = open_url(file.to_str().unwrap()).unwrap();
        let data: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut sink = ObjectSink::create(store.as_ref(), &location).unwrap();
        for chunk in data.chunks(1 << 16) {
            sink.write_all(chunk).unwrap();
        }
        assert!(!file.exists(), "visible before finish");
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), data);
        // Dropped unfinished: the old object stays.
        let mut sink = ObjectSink::create(store.as_ref(), &location).unwrap();
        sink.write_all(b"partial").unwrap();
        drop(sink);
        assert_eq!(std::fs::read(&file).unwrap(), data);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
