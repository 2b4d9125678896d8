//! Batch inputs copied while earlier work runs (`Backend::upload_input` / `release_input`): a run
//! of uploads into one buffer, each read by an op queued after it, gives every op the input it
//! was queued after. On a GPU each copy runs on a second stream, ordered by events after the
//! buffer's release (or after everything queued, without one) and before the ops queued later;
//! a missing wait shows here as an op reading another batch, or a copy overwriting a batch
//! before its reader ran.

use super::common::{assert_bits, body, up, up_idx, v, vm, Rng};
use ecgfm_kernels::Backend;

/// See the module comment. The reader gathers every patch in order, which copies the input.
pub fn overlapped_uploads<B: Backend>(be: &B) {
    let (batch, leads, samples, patch) = (16, 12, 2250, 75);
    let (n, per_lead) = (batch * leads * samples, samples / patch);
    let t = batch * leads * per_lead;
    let tokens: Vec<u32> = (0..t)
        .flat_map(|r| {
            let (sample_lead, pos) = (r / per_lead, r % per_lead);
            [
                (sample_lead / leads) as u32,
                (sample_lead % leads) as u32,
                pos as u32,
            ]
        })
        .collect();
    let tokens = up_idx(be, &tokens);
    let mut rng = Rng::new(23);
    let inputs: Vec<Vec<f32>> = (0..5).map(|_| rng.vec(n, 1.0)).collect();
    let mut x = up(be, &vec![0.0; n]);
    let mut outs = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        be.upload_input(input, vm(&mut x));
        let mut out = up(be, &vec![0.0; n]);
        be.gather_patches(vm(&mut out), v(&x), v(&tokens), t, leads, samples, patch);
        // Every other copy follows a release; the others wait for all the work queued.
        if i % 2 == 0 {
            be.release_input(&mut x);
        }
        outs.push(out);
    }
    for (i, (out, input)) in outs.iter().zip(&inputs).enumerate() {
        assert_bits(&format!("batch {i} as read"), &body(be, out, n), input);
    }
}
