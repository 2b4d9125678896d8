//! The passes of `Encoder` over one batch: the token plan (every patch of every present lead),
//! the embedding, block stack, pooling, head and loss, then the same in reverse, op by op on the
//! backend (docs/model.md, "Evaluation").

use ecgfm_kernels::{Backend, ViewMut};

use super::{Encoder, Pooling, Targets, HEAD_B, HEAD_W, LEAD, PATCH_B, PATCH_W};
use crate::model::error::ModelError;
use crate::model::stack::Packing;

impl<B: Backend> Encoder<B> {
    /// Checks a batch, builds its token plan (every patch of every present lead) and uploads it.
    pub(super) fn prepare(
        &mut self,
        x: &[f32],
        lead_mask: &[u8],
        n: usize,
    ) -> Result<(), ModelError> {
        let (l, s, np) = (
            self.cfg.leads,
            self.cfg.samples,
            self.cfg.patches_per_lead(),
        );
        if n == 0 || n > self.max_batch {
            return Err(ModelError::InvalidBatch(format!(
                "batch of {n} samples; the encoder takes 1 to {}",
                self.max_batch
            )));
        }
        for (what, want, got) in [
            ("x", n * l * s, x.len()),
            ("lead_mask", n * l, lead_mask.len()),
        ] {
            if want != got {
                return Err(ModelError::InvalidBatch(format!(
                    "{what} holds {got} values, {n} samples need {want}"
                )));
            }
        }
        let h = &mut self.host;
        h.tokens.clear();
        h.cu_seqs.clear();
        h.cu_pool.clear();
        h.cu_seqs.push(0);
        h.cu_pool.push(0);
        for b in 0..n {
            let mask = &lead_mask[b * l..(b + 1) * l];
            if mask.iter().any(|&m| m > 1) || !mask.contains(&1) {
                return Err(ModelError::InvalidBatch(format!(
                    "sample {b}: the lead mask must hold 0 or 1 and at least one present lead"
                )));
            }
            for (lead, &present) in mask.iter().enumerate() {
                if present == 1 {
                    for p in 0..np {
                        h.tokens
                            .extend_from_slice(&[b as u32, lead as u32, p as u32]);
                    }
                }
                if self.head.pooling == Pooling::Leads {
                    h.cu_pool.push((h.tokens.len() / 3) as u32);
                }
            }
            h.cu_seqs.push((h.tokens.len() / 3) as u32);
            if self.head.pooling == Pooling::Mean {
                h.cu_pool.push((h.tokens.len() / 3) as u32);
            }
        }
        self.batch = n;
        let be = &self.be;
        be.upload(x, (&mut self.x).into());
        be.upload_idx(&h.tokens, (&mut self.idx.tokens).into());
        be.upload_idx(&h.cu_seqs, (&mut self.idx.cu_seqs).into());
        be.upload_idx(&h.cu_pool, (&mut self.idx.cu_pool).into());
        Ok(())
    }

    pub(super) fn upload_targets(&mut self, targets: Targets<'_>) -> Result<(), ModelError> {
        let (n, k) = (self.batch, self.head.classes);
        match (targets, self.head.multi_label) {
            (Targets::Classes(classes), false) if classes.len() == n => {
                if let Some(bad) = classes.iter().find(|&&c| c as usize >= k) {
                    return Err(ModelError::InvalidBatch(format!(
                        "class {bad} is not below the head's {k} classes"
                    )));
                }
                self.be.upload_idx(classes, (&mut self.idx.labels).into());
            }
            (Targets::MultiLabel(y), true) if y.len() == n * k => {
                self.be.upload(y, (&mut self.targets).into());
            }
            _ => {
                return Err(ModelError::InvalidBatch(format!(
                    "targets do not fit a {} head of {k} classes over {n} samples",
                    if self.head.multi_label {
                        "multi-label"
                    } else {
                        "single-label"
                    }
                )))
            }
        }
        Ok(())
    }

    fn tokens(&self) -> usize {
        self.host.tokens.len() / 3
    }

    fn pool_groups(&self) -> usize {
        self.host.cu_pool.len() - 1
    }

    /// Embedding, blocks, final norm and pooling: `pooled` (B, F).
    pub(super) fn forward_features(&mut self) {
        self.params.refresh(&self.be);
        let (cfg, t, d) = (&self.cfg, self.tokens(), self.cfg.dim);
        let w = self.params.weights();
        let p = |i: usize| w.p(self.off[i]);
        self.be.gather_patches(
            (&mut self.patches).into(),
            (&self.x).into(),
            (&self.idx.tokens).into(),
            t,
            cfg.leads,
            cfg.samples,
            cfg.patch,
        );
        self.be.matmul_forward(
            self.stack.input_mut().into(),
            (&self.patches).into(),
            w.m(self.off[PATCH_W]),
            Some(p(PATCH_B)),
            t,
            cfg.patch,
            d,
        );
        self.be.add_lead_pos_forward(
            self.stack.input_mut().into(),
            p(LEAD),
            (&self.pos).into(),
            (&self.idx.tokens).into(),
            t,
            d,
        );
        let pack = Packing {
            cu_seqlens: &self.idx.cu_seqs,
            seqs: self.batch,
            tokens: t,
        };
        self.stack.forward(&self.be, w, pack);
        // (B Q, D) = (B, F) row-major: one mean per pooled group.
        let groups = self.pool_groups();
        self.be.mean_pool_forward(
            (&mut self.pooled).into(),
            (&self.stack.norm_out).into(),
            (&self.idx.cu_pool).into(),
            groups,
            d,
        );
    }

    /// logits (B, K) = pooled (B, F) @ head.weight^T + head.bias.
    pub(super) fn forward_head(&mut self) {
        let f = self.features();
        let w = self.params.weights();
        self.be.matmul_forward(
            (&mut self.logits).into(),
            (&self.pooled).into(),
            w.m(self.off[HEAD_W]),
            Some(w.p(self.off[HEAD_B])),
            self.batch,
            f,
            self.head.classes,
        );
    }

    pub(super) fn forward_loss_only(&mut self) {
        let (n, k) = (self.batch, self.head.classes);
        if self.head.multi_label {
            self.be.bce_forward(
                (&mut self.loss).into(),
                (&self.logits).into(),
                (&self.targets).into(),
                n,
                k,
            );
        } else {
            self.be.cross_entropy_forward(
                (&mut self.loss).into(),
                (&self.logits).into(),
                (&self.idx.labels).into(),
                n,
                k,
            );
        }
    }

    /// Backward of the last forward pass; ADDS into `grads`.
    pub(super) fn backward(&mut self, loss_scale: f32) {
        let (n, k, f, d, t) = (
            self.batch,
            self.head.classes,
            self.features(),
            self.cfg.dim,
            self.tokens(),
        );
        let groups = self.pool_groups();
        let be = &self.be;
        if self.head.multi_label {
            be.bce_backward(
                (&mut self.dlogits).into(),
                (&self.logits).into(),
                (&self.targets).into(),
                n,
                k,
                loss_scale,
            );
        } else {
            be.cross_entropy_backward(
                (&mut self.dlogits).into(),
                (&self.logits).into(),
                (&self.idx.labels).into(),
                n,
                k,
                loss_scale,
            );
        }
        let w = self.params.weights();
        be.matmul_backward(
            Some((&mut self.dpooled).into()),
            ViewMut::new(&mut self.grads, self.off[HEAD_W]),
            Some(self.off[HEAD_B]),
            (&self.dlogits).into(),
            (&self.pooled).into(),
            w.m(self.off[HEAD_W]),
            n,
            f,
            k,
        );
        be.fill((&mut self.stack.grads.dln).into(), t * d, 0.0);
        be.mean_pool_backward(
            (&mut self.stack.grads.dln).into(),
            (&self.dpooled).into(),
            (&self.idx.cu_pool).into(),
            groups,
            t,
            d,
        );
        let pack = Packing {
            cu_seqlens: &self.idx.cu_seqs,
            seqs: n,
            tokens: t,
        };
        self.stack
            .backward(be, w, &mut self.grads, pack, &mut |_, _, _| {});
        let dres = &self.stack.grads.dres;
        be.add_lead_pos_backward(
            ViewMut::new(&mut self.grads, self.off[LEAD]),
            dres.into(),
            (&self.idx.tokens).into(),
            t,
            d,
            self.cfg.leads,
        );
        be.matmul_backward(
            None,
            ViewMut::new(&mut self.grads, self.off[PATCH_W]),
            Some(self.off[PATCH_B]),
            dres.into(),
            (&self.patches).into(),
            w.m(self.off[PATCH_W]),
            t,
            self.cfg.patch,
            d,
        );
    }
}
