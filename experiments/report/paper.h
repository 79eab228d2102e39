// The paper's published validation losses (ReMoE, ICLR 2025, after 30B tokens of The Pile;
// restated in docs/experiments.md), to set beside ours. These are the paper's numbers,
// never ours: our runs are at a far smaller scale, so only orderings and trends compare.
#pragma once
#include <optional>
#include <string>

#include "experiments/report/run_record.h"

namespace remoe::experiments {

// The paper's number for the point a run stands for, if the paper reports one:
//   experiment E: MoE / ReMoE at E (k = 1, 182M);  G: MoE / ReMoE at G, Dense, Dense×8;
//   N: the i-th size of the sweep's "N" axis ↔ 182M, 469M, 978M (dense / MoE / ReMoE);
//   k: k = 1 only (the paper ran no other k): MoE 1.936, ReMoE 1.921.
// A compute-matched TopK point has none (the paper gives no separate number).
std::optional<double> paper_valid_loss(const RunRecord& run);

// The paper's zero-shot average accuracy in % (Table 2: ARC-c, ARC-e, BoolQ, HellaSwag, LAMBADA,
// PIQA, RACE at 182M, E = 8, k = 1) of a plain router: a point labelled with its router's name
// (routers.toml); its ablations (topk-no_aux, ...) have none.
std::optional<double> paper_zero_shot_average(const RunRecord& run);

// "MoE" / "ReMoE" / "Dense" — the paper's names for our routers.
std::string paper_router_name(const std::string& router);

}  // namespace remoe::experiments
