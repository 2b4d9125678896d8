//! Every op of a kernel backend against the CPU backend, on random, odd, empty and ragged shapes
//! (written once, generic over the backend): run on the host harness's backend in CI
//! (kernels/cuda-host/tests/against_cpu.rs) and on `CudaBackend` where a GPU is usable
//! (kernels/tests/cuda_against_cpu.rs, scripts/gpu-check.sh). Every buffer carries NaN padding
//! around its tensor, so a write outside a view shows up.

#![allow(dead_code)] // each including test binary uses the same list

pub mod attention;
pub mod attention_bf16;
#[path = "../common/mod.rs"]
pub mod base;
pub mod common;
pub mod dense;
pub mod inputs;
pub mod operands;
pub mod tokens_heads;

/// One `#[test]` per op group, each running on the backend `$make` returns (`None`: skipped).
macro_rules! against_cpu_tests {
    ($make:expr) => {
        #[test]
        fn elementwise_and_norm_helpers_match_the_cpu() {
            if let Some(be) = $make {
                against_cpu::dense::elementwise_and_norm_helpers(&be);
            }
        }

        #[test]
        fn gelu_is_bitwise_the_cpu_formula() {
            if let Some(be) = $make {
                against_cpu::dense::gelu(&be);
            }
        }

        #[test]
        fn adamw_is_bitwise_the_cpu_update() {
            if let Some(be) = $make {
                against_cpu::dense::adamw(&be);
            }
        }

        #[test]
        fn fused_adamw_and_clipping_is_bitwise_the_unfused_ops_and_the_cpu() {
            if let Some(be) = $make {
                against_cpu::dense::adamw_fused(&be);
            }
        }

        #[test]
        fn layernorm_matches_the_cpu() {
            if let Some(be) = $make {
                against_cpu::dense::layernorm(&be);
            }
        }

        #[test]
        fn residual_add_fused_with_layernorm_is_bitwise_the_two_ops() {
            if let Some(be) = $make {
                against_cpu::dense::add_layernorm(&be);
            }
        }

        #[test]
        fn gelu_backward_with_the_bias_gradient_is_bitwise_the_two_ops() {
            if let Some(be) = $make {
                against_cpu::dense::gelu_bias_grad(&be);
            }
        }

        #[test]
        fn bias_fusions_are_bitwise_the_unfused_ops() {
            if let Some(be) = $make {
                against_cpu::dense::bias_fusions(&be);
            }
        }

        #[test]
        fn matmul_matches_the_cpu() {
            if let Some(be) = $make {
                against_cpu::dense::matmul(&be);
            }
        }

        #[test]
        fn attention_matches_the_cpu_on_ragged_packed_sequences() {
            if let Some(be) = $make {
                against_cpu::attention::attention(&be);
            }
        }

        #[test]
        fn attention_matches_the_cpu_at_the_models_sequence_lengths() {
            if let Some(be) = $make {
                against_cpu::attention::model_lengths(&be);
            }
        }

        #[test]
        fn bf16_attention_matches_the_bf16_cpu_at_the_models_sequence_lengths() {
            if let Some(be) = $make {
                against_cpu::attention_bf16::model_lengths(
                    &be.with_precision(ecgfm_kernels::Precision::Bf16),
                );
            }
        }

        #[test]
        fn bf16_matmul_matches_the_bf16_cpu() {
            if let Some(be) = $make {
                against_cpu::dense::matmul(&be.with_precision(ecgfm_kernels::Precision::Bf16));
            }
        }

        #[test]
        fn bf16_operand_storage_holds_the_rounded_results() {
            if let Some(be) = $make {
                let bf16 = ecgfm_kernels::Precision::Bf16;
                against_cpu::operands::operand_storage(&be.with_precision(bf16));
            }
        }

        #[test]
        fn bf16_weight_copy_rounds_every_value_as_the_cpu() {
            if let Some(be) = $make {
                let bf16 = ecgfm_kernels::Precision::Bf16;
                against_cpu::operands::weight_copy(&be.with_precision(bf16));
            }
        }

        #[test]
        fn bf16_gelu_input_is_rounded_and_read_from_operand_storage() {
            if let Some(be) = $make {
                let bf16 = ecgfm_kernels::Precision::Bf16;
                against_cpu::operands::gelu_input(&be.with_precision(bf16));
            }
        }

        #[test]
        fn bf16_attention_keeps_qkv_and_out_in_operand_storage() {
            if let Some(be) = $make {
                let bf16 = ecgfm_kernels::Precision::Bf16;
                against_cpu::operands::attention_qkv(&be.with_precision(bf16));
            }
        }

        #[test]
        fn tensor_core_mma_fragments_give_the_plain_product() {
            if let Some(be) = $make {
                against_cpu::attention_bf16::mma_fragments(&be);
            }
        }

        #[test]
        fn bf16_attention_matches_the_bf16_cpu_on_ragged_packed_sequences() {
            if let Some(be) = $make {
                against_cpu::attention_bf16::attention(
                    &be.with_precision(ecgfm_kernels::Precision::Bf16),
                );
            }
        }

        #[test]
        fn bf16_attention_carries_the_running_maximum_across_key_tiles() {
            if let Some(be) = $make {
                against_cpu::attention_bf16::sharp_scores(
                    &be.with_precision(ecgfm_kernels::Precision::Bf16),
                );
            }
        }

        #[test]
        fn bf16_attention_is_bitwise_deterministic() {
            if let Some(be) = $make {
                against_cpu::attention_bf16::deterministic(
                    &be.with_precision(ecgfm_kernels::Precision::Bf16),
                );
            }
        }

        #[test]
        fn bf16_attention_falls_back_to_fp32_at_other_head_sizes() {
            if let Some(be) = $make {
                against_cpu::attention_bf16::fallback(
                    &be.with_precision(ecgfm_kernels::Precision::Bf16),
                );
            }
        }

        #[test]
        fn token_gathers_and_scatters_match_the_cpu() {
            if let Some(be) = $make {
                against_cpu::tokens_heads::token_gathers_and_scatters(&be);
            }
        }

        #[test]
        fn batch_inputs_copied_while_earlier_work_runs_arrive_in_order() {
            if let Some(be) = $make {
                against_cpu::inputs::overlapped_uploads(&be);
            }
        }

        #[test]
        fn mean_pooling_of_more_sequences_than_grid_y_holds_matches_the_cpu() {
            if let Some(be) = $make {
                against_cpu::tokens_heads::mean_pool_many_sequences(&be);
            }
        }

        #[test]
        fn masked_mse_matches_the_cpu() {
            if let Some(be) = $make {
                against_cpu::tokens_heads::masked_mse(&be);
            }
        }

        #[test]
        fn classification_heads_match_the_cpu() {
            if let Some(be) = $make {
                against_cpu::tokens_heads::classification_heads(&be);
            }
        }
    };
}
