//! An object store that misbehaves where a test says, for the tests of code that must survive a
//! faulty store or network: [`Intercepted`] wraps any store and passes every call through, except
//! puts, multipart puts and gets, which go through the test's [`Hooks`] (by default straight to the
//! wrapped store). A test writes only the calls it changes: a write applied but answered with an
//! error, bytes damaged on their way in, a read held back.

use std::fmt;
use std::sync::Arc;

use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// What a test changes of the calls that reach `inner`, the wrapped store.
#[async_trait::async_trait]
pub trait Hooks: fmt::Debug + Send + Sync + 'static {
    async fn put_opts(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        options: GetOptions,
    ) -> Result<GetResult> {
        inner.get_opts(location, options).await
    }
}

/// `inner` with its puts and gets going through `hooks`.
#[derive(Debug)]
pub struct Intercepted<H> {
    pub inner: Arc<dyn ObjectStore>,
    pub hooks: H,
}

impl<H: Hooks> Intercepted<H> {
    /// An in-memory store with `hooks`.
    pub fn in_memory(hooks: H) -> Self {
        Intercepted {
            inner: Arc::new(object_store::memory::InMemory::new()),
            hooks,
        }
    }
}

impl<H> fmt::Display for Intercepted<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Intercepted({})", self.inner)
    }
}

#[async_trait::async_trait]
impl<H: Hooks> ObjectStore for Intercepted<H> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let inner = self.inner.as_ref();
        self.hooks.put_opts(inner, location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.as_ref();
        self.hooks.put_multipart_opts(inner, location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let inner = self.inner.as_ref();
        self.hooks.get_opts(inner, location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
