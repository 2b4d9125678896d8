//! The forward and backward passes of `Mae` over a prepared batch: the embedding, encoder,
//! decoder and loss, then the same in reverse, op by op on the backend (docs/model.md, "Forward").

use ecgfm_kernels::{Backend, ViewMut};

use super::{GradsReady, Mae};
use crate::model::batch::HostBatch;
use crate::model::error::ModelError;
use crate::model::stack::Packing;

impl<B: Backend> Mae<B> {
    /// Validates the batch, builds its token plan and uploads the signals and indices.
    pub(super) fn prepare(&mut self, batch: &HostBatch) -> Result<(), ModelError> {
        if batch.batch > self.max_batch {
            return Err(ModelError::InvalidBatch(format!(
                "batch of {} samples exceeds the model's max_batch {}",
                batch.batch, self.max_batch
            )));
        }
        batch.validate(&self.cfg)?;
        self.staged = false;
        self.plan.build(&self.cfg, batch);
        let (be, plan, idx) = (&self.be, &self.plan, &mut self.idx);
        be.upload_input(&batch.x, (&mut self.x).into());
        be.upload_idx(&plan.enc_tokens, (&mut idx.enc_tokens).into());
        be.upload_idx(&plan.dec_tokens, (&mut idx.dec_tokens).into());
        be.upload_idx(&plan.dec_src, (&mut idx.dec_src).into());
        be.upload_idx(&plan.masked_tokens, (&mut idx.masked_tokens).into());
        be.upload_idx(&plan.masked_rows, (&mut idx.masked_rows).into());
        be.upload_idx(&plan.cu_enc, (&mut idx.cu_enc).into());
        be.upload_idx(&plan.cu_dec, (&mut idx.cu_dec).into());
        Ok(())
    }

    /// Forward pass of the prepared batch: writes the loss into `self.loss` (on the device) and
    /// leaves every activation saved.
    pub(super) fn forward(&mut self) {
        self.params.refresh(&self.be);
        let (be, cfg, o, idx) = (&self.be, &self.cfg, &self.off, &self.idx);
        let w = self.params.weights();
        let p = |off: usize| w.p(off);
        let (t_enc, t_dec, masked) = (self.plan.t_enc(), self.plan.t_dec(), self.plan.masked());
        let (d, dd, pl) = (cfg.dim, cfg.dec_dim, cfg.patch);
        let seqs = self.plan.seqs();
        // Encoder embedding: Linear(P -> D) on the visible patches + lead + position.
        be.gather_patches(
            (&mut self.patches).into(),
            (&self.x).into(),
            (&idx.enc_tokens).into(),
            t_enc,
            cfg.leads,
            cfg.samples,
            pl,
        );
        // The loss's targets: the masked patches. Nothing reads x after this, so the next
        // batch may be copied into it while this step runs (Backend::release_input).
        be.gather_patches(
            (&mut self.target).into(),
            (&self.x).into(),
            (&idx.masked_tokens).into(),
            masked,
            cfg.leads,
            cfg.samples,
            pl,
        );
        be.release_input(&mut self.x);
        be.matmul_forward(
            self.enc.input_mut().into(),
            (&self.patches).into(),
            w.m(o.patch_w),
            Some(p(o.patch_b)),
            t_enc,
            pl,
            d,
        );
        be.add_lead_pos_forward(
            self.enc.input_mut().into(),
            p(o.lead),
            (&self.pos_enc).into(),
            (&idx.enc_tokens).into(),
            t_enc,
            d,
        );
        let enc_pack = Packing {
            cu_seqlens: &idx.cu_enc,
            seqs,
            tokens: t_enc,
        };
        self.enc.forward(be, w, enc_pack);
        // Decoder embedding: Linear(D -> Dd), mask tokens for the hidden patches, lead + position.
        be.matmul_forward(
            (&mut self.z).into(),
            (&self.enc.norm_out).into(),
            w.m(o.dec_embed_w),
            Some(p(o.dec_embed_b)),
            t_enc,
            d,
            dd,
        );
        be.mask_scatter_forward(
            self.dec.input_mut().into(),
            (&self.z).into(),
            p(o.mask_token),
            (&idx.dec_src).into(),
            t_dec,
            dd,
        );
        be.add_lead_pos_forward(
            self.dec.input_mut().into(),
            p(o.dec_lead),
            (&self.pos_dec).into(),
            (&idx.dec_tokens).into(),
            t_dec,
            dd,
        );
        let dec_pack = Packing {
            cu_seqlens: &idx.cu_dec,
            seqs,
            tokens: t_dec,
        };
        self.dec.forward(be, w, dec_pack);
        be.matmul_forward(
            (&mut self.pred).into(),
            (&self.dec.norm_out).into(),
            w.m(o.pred_w),
            Some(p(o.pred_b)),
            t_dec,
            dd,
            pl,
        );
        // Loss over the masked patches (gathered into `target` above).
        be.masked_mse_forward(
            (&mut self.loss).into(),
            (&self.pred).into(),
            (&self.target).into(),
            (&idx.masked_rows).into(),
            masked,
            pl,
            cfg.norm_pix,
        );
    }

    /// Backward pass of the last `forward`; adds `loss_scale * d loss / d params` to the grads.
    /// The gradient tensors are finished in reverse layout order; `ready(be, grads, first)` is
    /// called each time everything from element `first` to the end is final.
    pub(super) fn backward(&mut self, loss_scale: f32, ready: &mut GradsReady<'_, B>) {
        let (be, cfg, o, idx) = (&self.be, &self.cfg, &self.off, &self.idx);
        let (w, grads) = (self.params.weights(), &mut self.grads);
        let (t_enc, t_dec, masked) = (self.plan.t_enc(), self.plan.t_dec(), self.plan.masked());
        let (d, dd, pl) = (cfg.dim, cfg.dec_dim, cfg.patch);
        let seqs = self.plan.seqs();
        be.masked_mse_backward(
            (&mut self.dpred).into(),
            (&self.pred).into(),
            (&self.target).into(),
            (&idx.masked_rows).into(),
            t_dec,
            masked,
            pl,
            cfg.norm_pix,
            loss_scale,
        );
        // Decoder.
        be.matmul_backward(
            Some((&mut self.dec.grads.dln).into()),
            ViewMut::new(grads, o.pred_w),
            Some(o.pred_b),
            (&self.dpred).into(),
            (&self.dec.norm_out).into(),
            w.m(o.pred_w),
            t_dec,
            dd,
            pl,
        );
        ready(be, grads, o.pred_w);
        let dec_pack = Packing {
            cu_seqlens: &idx.cu_dec,
            seqs,
            tokens: t_dec,
        };
        self.dec.backward(be, w, grads, dec_pack, ready);
        let ddec_in = &self.dec.grads.dres;
        be.add_lead_pos_backward(
            ViewMut::new(grads, o.dec_lead),
            ddec_in.into(),
            (&idx.dec_tokens).into(),
            t_dec,
            dd,
            cfg.leads,
        );
        ready(be, grads, o.dec_lead);
        be.fill((&mut self.dz).into(), t_enc * dd, 0.0);
        be.mask_scatter_backward(
            (&mut self.dz).into(),
            ViewMut::new(grads, o.mask_token),
            ddec_in.into(),
            (&idx.dec_src).into(),
            t_dec,
            dd,
        );
        ready(be, grads, o.mask_token);
        // Encoder.
        be.matmul_backward(
            Some((&mut self.enc.grads.dln).into()),
            ViewMut::new(grads, o.dec_embed_w),
            Some(o.dec_embed_b),
            (&self.dz).into(),
            (&self.enc.norm_out).into(),
            w.m(o.dec_embed_w),
            t_enc,
            d,
            dd,
        );
        ready(be, grads, o.dec_embed_w);
        let enc_pack = Packing {
            cu_seqlens: &idx.cu_enc,
            seqs,
            tokens: t_enc,
        };
        self.enc.backward(be, w, grads, enc_pack, ready);
        let denc_in = &self.enc.grads.dres;
        be.add_lead_pos_backward(
            ViewMut::new(grads, o.lead),
            denc_in.into(),
            (&idx.enc_tokens).into(),
            t_enc,
            d,
            cfg.leads,
        );
        ready(be, grads, o.lead);
        be.matmul_backward(
            None,
            ViewMut::new(grads, o.patch_w),
            Some(o.patch_b),
            denc_in.into(),
            (&self.patches).into(),
            w.m(o.patch_w),
            t_enc,
            pl,
            d,
        );
        ready(be, grads, 0);
    }
}
