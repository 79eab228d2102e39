"""experiments/report/plot.py: draws every plot of a report.json and draws the numbers in it."""
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "report"))
import plot  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sample_report():
    point = lambda row, router, mean, std, paper: {  # noqa: E731
        "row": row, "label": f"{row}-{router}", "router": router, "n": 3, "mean": mean, "std": std, "paper": paper,
        "per_seed": {}}
    curve = lambda label, router: {  # noqa: E731
        "name": f"{label}-s1", "label": label, "router": router, "seed": 1, "end": "finished",
        "train_loss": [[10, 6.0], [20, 5.5]], "valid_loss": [[20, 5.6]],
        "sparsity": [[10, 0.5], [20, 0.87]], "lambda": [[10, 1e-8], [20, 1e-6]]}
    return {"sweeps": [{
        "sweep": "scaling_e", "experiment": "E", "scale": "micro", "rows": ["E4", "E8"], "routers": ["topk", "relu"],
        "points": [point("E4", "topk", 5.2, 0.1, 1.971), point("E4", "relu", 5.1, 0.2, 1.961),
                   point("E8", "topk", 5.0, 0.1, 1.936), point("E8", "relu", 4.9, 0.1, 1.921)],
        "pairs": [{"row": "E4", "n": 3, "mean": -0.1, "std": 0.05, "paper": -0.010, "held": 3, "per_seed": {}},
                  {"row": "E8", "n": 3, "mean": -0.1, "std": 0.02, "paper": -0.015, "held": 3, "per_seed": {}}],
        "curves": [curve("E4-topk", "topk"), curve("E4-relu", "relu")]}]}


class PlotTest(unittest.TestCase):
    def test_every_plot_is_a_png_and_draws_the_report_numbers(self):
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            report.write_text(json.dumps(sample_report()))
            written = plot.main(report, tmp)
            self.assertEqual(sorted(written), ["scaling_e_curves.png", "scaling_e_loss.png", "scaling_e_stages.png"])
            for name in written:
                self.assertEqual((Path(tmp) / name).read_bytes()[:8], PNG_MAGIC, name)
            loss = written["scaling_e_loss.png"]
            self.assertEqual(loss["ours"]["topk"], [5.2, 5.0])
            self.assertEqual(loss["paper"]["relu"], [1.961, 1.921])
            self.assertEqual(loss["diff"]["paper"], [-0.010, -0.015])
            self.assertEqual(written["scaling_e_stages.png"], 1)  # one ReMoE run

    def test_a_sweep_without_remoe_runs_has_no_stages_plot(self):
        report = sample_report()
        report["sweeps"][0]["curves"] = [c for c in report["sweeps"][0]["curves"] if c["router"] != "relu"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "report.json"
            path.write_text(json.dumps(report))
            self.assertNotIn("scaling_e_stages.png", plot.main(path, tmp))

    def test_a_sweep_off_the_papers_grids_draws_only_its_own_panel(self):
        report = sample_report()
        sweep = report["sweeps"][0]
        for p in sweep["points"]:
            p["paper"] = None
        sweep["pairs"] = []
        self.assertEqual(plot.panels_of(sweep), ["ours"])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "report.json"
            path.write_text(json.dumps(report))
            loss = plot.main(path, tmp)["scaling_e_loss.png"]
            self.assertEqual(loss["ours"]["relu"], [5.1, 4.9])
            self.assertEqual(loss["paper"], {})
            self.assertEqual(loss["diff"], {})
        self.assertEqual(plot.panels_of(sample_report()["sweeps"][0]), ["ours", "paper", "diff"])


if __name__ == "__main__":
    unittest.main()
