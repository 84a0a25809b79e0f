// The looping-inspired regularizer (see recur/train_pass.h): cosine similarity between the same parameter
// group of layer ik+j and layer (i+1)k+j, pulling a deep model towards a looped one.
#include <cmath>
#include <string>

#include "recur/train_pass.h"

namespace recur {

float loop_regularizer(const Model& model, float* grads) {
  const ModelConfig& c = model.config();
  if (c.loop_reg_k == 0) return 0.0f;
  static const char* groups[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                 "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                 "mlp.down_proj",    "input_layernorm",  "post_attention_layernorm"};
  int L = c.n_layers, k = c.loop_reg_k, n_groups = 9;
  double total = 0, pair_weight = 1.0 / (L - k);
  for (const char* group : groups) {
    double cos_sum = 0;
    for (int i = 0; i + 1 < L / k; i++)
      for (int j = 0; j < k; j++) {
        const ParamInfo& pa = model.param("model.layers." + std::to_string(i * k + j) + "." + group + ".weight");
        const ParamInfo& pb = model.param("model.layers." + std::to_string((i + 1) * k + j) + "." + group + ".weight");
        const float* a = model.weights(pa.offset);
        const float* b = model.weights(pb.offset);
        double ab = 0, aa = 0, bb = 0;
        for (size_t n = 0; n < pa.numel; n++)
          ab += (double)a[n] * b[n], aa += (double)a[n] * a[n], bb += (double)b[n] * b[n];
        double na = std::sqrt(aa), nb = std::sqrt(bb), cosine = ab / (na * nb);
        cos_sum += cosine;
        if (!grads) continue;
        // dR/da = -λ/(G (L-k)) (b/(|a||b|) - cos a/|a|²), symmetric for b
        double scale = -c.loop_reg_lambda / n_groups * pair_weight;
        float* ga = grads + pa.offset;
        float* gb = grads + pb.offset;
        for (size_t n = 0; n < pa.numel; n++) {
          ga[n] += (float)(scale * (b[n] / (na * nb) - cosine * a[n] / aa));
          gb[n] += (float)(scale * (a[n] / (na * nb) - cosine * b[n] / bb));
        }
      }
    total += 1.0 - pair_weight * cos_sum;
  }
  return (float)(c.loop_reg_lambda * total / n_groups);
}

}  // namespace recur
