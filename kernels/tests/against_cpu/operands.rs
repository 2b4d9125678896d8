//! Matrix-product operand storage (`Backend::alloc_operand`: bf16 on a bf16 kernel backend): the
//! LayerNorm and GELU ops write into it exactly their f32 results rounded to bf16 (unrounded
//! where the storage is f32), and a linear layer reading its input from it gives what it gives
//! on the same values stored in f32.

use super::common::{assert_bits, assert_close, down, up, v, vm, Rng, PAD};
use ecgfm_kernels::precision::rounded_bf16;
use ecgfm_kernels::{Backend, View, ViewMut};

/// A padded buffer of the backend's operand storage holding `data` (as `up` does for f32).
fn up_operand<B: Backend>(be: &B, data: &[f32]) -> B::Buf {
    let plain = up(be, data);
    let mut host = vec![0.0; PAD + data.len() + 3];
    be.download((&plain).into(), &mut host);
    let mut buf = be.alloc_operand(host.len());
    be.upload(&host, (&mut buf).into());
    buf
}

/// An operand-writing op run twice, into f32 and into operand storage: the operand holds the
/// f32 result as the storage keeps it.
fn check_written<B: Backend>(be: &B, name: &str, n: usize, mut write: impl FnMut(ViewMut<B::Buf>)) {
    let (mut plain, mut operand) = (up(be, &vec![0.0; n]), up_operand(be, &vec![0.0; n]));
    write(vm(&mut plain));
    write(vm(&mut operand));
    let f32_result = down(be, &plain, n);
    let want = match be.operand_bytes() {
        2 => rounded_bf16(&f32_result),
        _ => f32_result,
    };
    assert_bits(name, &down(be, &operand, n), &want);
}

/// out, dinp and dweight|dbias of a linear layer whose input `x` is `xs` in f32 storage or
/// (`operand`) in operand storage.
fn linear<B: Backend>(
    be: &B,
    xs: &[f32],
    (t, c, oc): (usize, usize, usize),
    operand: bool,
) -> Vec<Vec<f32>> {
    let mut rng = Rng::new((t * 7 + c * 3 + oc) as u64);
    let x = match operand {
        true => up_operand(be, xs),
        false => up(be, xs),
    };
    let (w, b, dout) = (
        up(be, &rng.vec(oc * c, 1.0)),
        up(be, &rng.vec(oc, 1.0)),
        up(be, &rng.vec(t * oc, 1.0)),
    );
    let mut out = up(be, &vec![0.0; t * oc]);
    be.matmul_forward(vm(&mut out), v(&x), v(&w), Some(v(&b)), t, c, oc);
    let (mut dx, mut dwb) = (
        up(be, &vec![0.0; t * c]),
        up(be, &rng.vec(oc * c + oc, 1.0)),
    );
    let dbias = Some(PAD + oc * c);
    be.matmul_backward(
        Some(vm(&mut dx)),
        vm(&mut dwb),
        dbias,
        View::new(&dout, PAD),
        v(&x),
        v(&w),
        t,
        c,
        oc,
    );
    vec![
        down(be, &out, t * oc),
        down(be, &dx, t * c),
        down(be, &dwb, oc * c + oc),
    ]
}

/// See the module comment. The linear layer's two storages agree within 1e-5 (relative to
/// 1 + |value|): the same rounded operands, whose sums a GPU's GEMMs may order differently.
pub fn operand_storage<B: Backend>(be: &B) {
    for (t, c, m) in [(1, 1, 2), (5, 7, 9), (97, 33, 75), (300, 16, 64)] {
        let mut rng = Rng::new((t * 11 + c) as u64);
        let (n, nm) = (t * c, t * m);
        let x = up(be, &rng.vec(n, 2.0));
        let (a, w, b) = (
            up(be, &rng.vec(n, 1.0)),
            up(be, &rng.vec(c, 1.0)),
            up(be, &rng.vec(c, 1.0)),
        );
        let (mut mean, mut rstd) = (up(be, &vec![0.0; t]), up(be, &vec![0.0; t]));
        check_written(be, &format!("layernorm t={t} c={c}"), n, |out| {
            be.layernorm_forward(out, vm(&mut mean), vm(&mut rstd), v(&x), v(&w), v(&b), t, c)
        });
        let mut res = up(be, &vec![0.0; n]);
        check_written(be, &format!("add_layernorm t={t} c={c}"), n, |out| {
            let norm = (out, vm(&mut mean), vm(&mut rstd));
            be.add_layernorm_forward(
                vm(&mut res),
                norm,
                (v(&a), v(&x), Some(v(&b))),
                (v(&w), v(&b)),
                t,
                c,
            )
        });
        let pre = up(be, &rng.vec(nm, 3.0));
        check_written(be, &format!("gelu n={nm}"), nm, |out| {
            be.gelu_forward(out, v(&pre), nm)
        });
        let (w1, b1) = (up(be, &rng.vec(m * c, 1.0)), up(be, &rng.vec(m, 1.0)));
        let mut pre = up(be, &vec![0.0; nm]);
        check_written(be, &format!("matmul_gelu t={t} c={c} m={m}"), nm, |out| {
            be.matmul_gelu_forward((vm(&mut pre), out), v(&x), (v(&w1), v(&b1)), t, c, m)
        });
        let xs = rounded_bf16(&rng.vec(n, 1.0));
        let plain = linear(be, &xs, (t, c, m), false);
        let operand = linear(be, &xs, (t, c, m), true);
        for (name, (g, w)) in ["out", "dinp", "dweight|dbias"]
            .iter()
            .zip(operand.iter().zip(&plain))
        {
            assert_close(&format!("linear {name} ({t}, {c}, {m})"), g, w, 1e-5);
        }
    }
}
