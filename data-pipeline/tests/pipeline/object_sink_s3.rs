//! `ObjectSink` on S3 (a moto server): an upload dropped before `finish` is aborted, so the
//! store keeps none of its parts; a finished one publishes the object whole.

use crate::common;

use std::io::Write;

use common::s3::MotoS3;
use ecgfm_data::object_sink::ObjectSink;
use ecgfm_data::store;

#[test]
fn a_sink_dropped_unfinished_leaves_no_upload_behind() {
    let Some(s3) = MotoS3::start("sink-bucket") else {
        return;
    };
    let (object_store, root) = s3.open("embeddings");
    let location = store::join(&root, "out.bin");
    let uploads = || s3.get("/sink-bucket?uploads");
    // 6 MiB: the first 5 MiB part uploads while the sink is open.
    let data: Vec<u8> = (0..6u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut sink = ObjectSink::create(object_store.as_ref(), &location).unwrap();
    sink.write_all(&data).unwrap();
    let open = uploads();
    assert!(
        open.contains("<UploadId>"),
        "the upload is under way: {open}"
    );
    drop(sink);
    let after = uploads();
    assert!(!after.contains("<UploadId>"), "left behind: {after}");

    let mut sink = ObjectSink::create(object_store.as_ref(), &location).unwrap();
    sink.write_all(&data).unwrap();
    sink.finish().unwrap();
    let stored = store::block_on(store::get_bytes(object_store.as_ref(), &location)).unwrap();
    assert!(stored == data, "the object is not what was written");
    assert!(!uploads().contains("<UploadId>"));
}
