#!/usr/bin/env python3
"""ctest `lm_study_analysis`: the LM study's analysis (scripts/lm_study_analysis.py, the %Gap and report parts of
scripts/lm_study.py) on hand-made `recur eval --fewshot --json` outputs, against values computed by hand."""
import json
import math
import os
import struct
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lm_compare_seeds  # noqa: E402
import lm_study  # noqa: E402
from lm_study_analysis import category_scores, cross_block_cosine, family_fits, fit_log_depth, isoplot_svg, \
    majority_baselines, mean_se, paper_table, percent_gap, seed_mean, seed_score  # noqa: E402

CATEGORY_OF = {"primitives_math_d0": "primitives", "primitives_code_d0": "primitives", "closed_book_qa": "closed_book_qa",
               "choice": "open_book_qa"}


def generation(task, em, se, items=100):
    return {"task": task, "file": f"tasks/{task}.jsonl", "kind": "generation", "items": items, "exact_match": em,
            "exact_match_stderr": se}


def fewshot(*tasks):
    return {"checkpoint": "run/step_00000100", "shots": 0, "tasks": list(tasks)}


def model(label, depth, family, final, params=100000, val_nll=1.5):
    return {"label": label, "depth": depth, "family": family, "final": final, "params": params,
            "flops_per_token": 2.5e6, "val_nll": val_nll, "steps": 500, "train_seconds": 123.4}


class CategoryScores(unittest.TestCase):
    def test_mean_of_tasks_and_combined_stderr(self):
        scores = category_scores(fewshot(generation("primitives_math_d0", 0.5, 0.1),
                                         generation("primitives_code_d0", 0.3, 0.2),
                                         generation("closed_book_qa", 0.25, 0.05)), CATEGORY_OF)
        self.assertAlmostEqual(scores["primitives"][0], 0.4)
        self.assertAlmostEqual(scores["primitives"][1], math.sqrt(0.05) / 2)  # sqrt(0.1² + 0.2²) / 2
        self.assertEqual(scores["closed_book_qa"], (0.25, 0.05))

    def test_multiple_choice_uses_acc(self):
        task = {"task": "choice", "file": "c.jsonl", "kind": "multiple_choice", "items": 10, "acc": 0.7,
                "acc_stderr": 0.15, "acc_norm": 0.2, "acc_norm_stderr": 0.13}
        self.assertEqual(category_scores(fewshot(task), CATEGORY_OF)["open_book_qa"], (0.7, 0.15))

    def test_unknown_task_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "'mystery' has no category"):
            category_scores(fewshot(generation("mystery", 0.1, 0.01)), CATEGORY_OF)


class PercentGap(unittest.TestCase):
    def test_gap_and_delta_method_stderr(self):
        gap = percent_gap(looped=(0.5, 0.03), shallow=(0.2, 0.04), deep=(0.6, 0.0))
        self.assertAlmostEqual(gap["gap"], 0.75)  # (0.5 - 0.2) / (0.6 - 0.2)
        # sqrt(0.03² + 0.75²·0² + 0.25²·0.04²) / 0.4 = sqrt(0.001) / 0.4
        self.assertAlmostEqual(gap["gap_se"], math.sqrt(0.001) / 0.4)
        self.assertTrue(gap["defined"])

    def test_gap_within_noise_is_not_defined(self):
        gap = percent_gap(looped=(0.3, 0.04), shallow=(0.2, 0.04), deep=(0.25, 0.04))
        self.assertAlmostEqual(gap["gap"], 2.0)
        self.assertFalse(gap["defined"])  # 0.05 < 2·hypot(0.04, 0.04) = 0.113

    def test_no_gap(self):
        self.assertIsNone(percent_gap((0.3, 0.0), (0.2, 0.0), (0.2, 0.0))["gap"])


class DepthFits(unittest.TestCase):
    def test_recovers_a_log_law_with_propagated_stderr(self):
        points = [(f"{d}x1", d, (0.1 + 0.2 * math.log(d), se)) for d, se in ((2, 0.01), (4, 0.02), (8, 0.03))]
        fit = fit_log_depth(points)
        self.assertAlmostEqual(fit["alpha"], 0.2)
        self.assertAlmostEqual(fit["beta"], 0.1)
        # ln D = ln2·(1, 2, 3): weights ∓1 / (2 ln 2) on the ends, 0 in the middle
        self.assertAlmostEqual(fit["alpha_se"], math.sqrt(0.01 ** 2 + 0.03 ** 2) / (2 * math.log(2)))
        self.assertEqual((fit["points"], fit["exact"], fit["models"]), (3, False, ["2x1", "4x1", "8x1"]))

    def test_two_points_are_exact_and_one_is_no_fit(self):
        fit = fit_log_depth([("2x2", 4, (0.3, 0.0)), ("2x3", 6, (0.5, 0.0))])
        self.assertAlmostEqual(fit["alpha"], 0.2 / math.log(1.5))
        self.assertTrue(fit["exact"])
        self.assertIsNone(fit_log_depth([("2x2", 4, (0.3, 0.0))]))
        self.assertIsNone(fit_log_depth([("2x2", 4, (0.3, 0.0)), ("4x1", 4, (0.5, 0.0))]))

    def test_families_are_kept_apart(self):
        models = {"2x1": model("(2⊗1)", 2, "non-looped", {"p": (0.1, 0.0)}),
                  "4x1": model("(4⊗1)", 4, "non-looped", {"p": (0.3, 0.0)}),
                  "2x2": model("(2⊗2)", 4, "looped", {"p": (0.4, 0.0)}),
                  "2x3": model("(2⊗3)", 6, "looped", {"p": (0.6, 0.0)}),
                  "middle": model("1 + (2⊗2) + 1", 6, None, {"p": (0.9, 0.0)})}
        fits = family_fits(models, ["p"], {n: m["family"] for n, m in models.items() if m["family"]})
        self.assertEqual(fits["non-looped"]["p"]["models"], ["2x1", "4x1"])
        self.assertAlmostEqual(fits["non-looped"]["p"]["alpha"], 0.2 / math.log(2))
        self.assertEqual(fits["looped"]["p"]["models"], ["2x2", "2x3"])
        self.assertAlmostEqual(fits["looped"]["p"]["alpha"], 0.2 / math.log(1.5))


class Seeds(unittest.TestCase):
    def test_mean_and_stderr_over_seeds(self):
        mean, se = mean_se([0.1, 0.2, 0.6])  # sd = sqrt(((0.2)^2 + (0.1)^2 + (0.3)^2) / 2) = sqrt(0.07)
        self.assertAlmostEqual(mean, 0.3)
        self.assertAlmostEqual(se, math.sqrt(0.07 / 3))
        self.assertEqual(mean_se([0.4]), (0.4, 0.0))

    def test_item_noise_is_a_floor_under_the_seed_spread(self):
        self.assertAlmostEqual(seed_score([(0.1, 0.01), (0.2, 0.01), (0.6, 0.01)])[1], math.sqrt(0.07 / 3))
        mean, se = seed_score([(0.0, 0.03), (0.0, 0.03), (0.0, 0.03)])  # seeds agree: the items' s.e. remains
        self.assertEqual(mean, 0.0)
        self.assertAlmostEqual(se, math.sqrt(3 * 0.03 ** 2) / 3)

    def test_seed_mean_of_runs(self):
        def run(p, nll, seconds):
            return dict(model("(2⊗1)", 2, "non-looped", {"p": (p, 0.01)}, val_nll=nll), train_seconds=seconds,
                        checkpoints=[{"step": 500, "val_nll": nll, "categories": {"p": (p, 0.01)}, "eval_seconds": 2}])
        runs = [run(0.1, 1.0, 100), run(0.2, 1.2, 200), run(0.6, 1.4, 300)]
        m = seed_mean(runs)
        self.assertEqual(m["seeds"], 3)
        self.assertAlmostEqual(m["final"]["p"][0], 0.3)
        self.assertAlmostEqual(m["val_nll"], 1.2)
        self.assertAlmostEqual(m["val_nll_se"], math.sqrt(0.04 / 3))
        self.assertAlmostEqual(m["train_seconds"], 200)
        self.assertAlmostEqual(m["checkpoints"][0]["categories"]["p"][0], 0.3)
        self.assertEqual(m["checkpoints"][0]["eval_seconds"], 6)
        self.assertEqual([s["final"]["p"][0] for s in m["per_seed"]], [0.1, 0.2, 0.6])
        self.assertIs(seed_mean(runs[:1]), runs[0])
        row = paper_table({"a": m}, ["a"], ["p"], {}).splitlines()[2]
        self.assertEqual(row, "| (2⊗1) | 0.100M | 2.50 | 1.2000 ± 0.1155 | 30.0 ± 15.3 | 500 | 200 |")

    def test_seed_folders(self):
        ns = type("Args", (), {"out": "o"})()
        self.assertEqual(lm_study.run_dir_of(ns, "2x1", 0), os.path.join("o", "2x1"))
        self.assertEqual(lm_study.run_dir_of(ns, "2x1", 2), os.path.join("o", "2x1.seed2"))


class CompareSeeds(unittest.TestCase):
    def test_tables_of_seeds_average_per_model(self):
        header = ",".join(lm_compare_seeds.FIXED + ["igsm"])
        def row(name, nll, igsm):
            return f"{name},vanilla,-,-,-,100,1e13,352256,172,700,{nll},-,,,0.9,{igsm}"
        with tempfile.TemporaryDirectory() as d:
            for i, (a, b) in enumerate([(1.5, "10.0 ± 2.0"), (1.7, "20.0 ± 2.0")]):
                os.makedirs(os.path.join(d, str(i)))
                with open(os.path.join(d, str(i), "results.csv"), "w") as f:
                    f.write("\n".join([header, row("vanilla", a, b)] + ([row("mor", 1.1, "5.0 ± 1.0")] if i else []))
                            + "\n")
            rows, tasks = lm_compare_seeds.read_tables([os.path.join(d, "0"), os.path.join(d, "1")])
        self.assertEqual(tasks, ["igsm"])
        lines = lm_compare_seeds.seed_table(rows, tasks).splitlines()
        self.assertEqual(lines[2], "| vanilla | 2 | 352256 | 172 | 1.6000 ± 0.1000 | 0.9000 ± 0.0000 | 15.0 ± 5.0 |")
        self.assertEqual(lines[3], "| mor | 1 | 352256 | 172 | 1.1000 ± 0.0000 | 0.9000 ± 0.0000 | 5.0 ± 1.0 |")


class Report(unittest.TestCase):
    def setUp(self):
        self.models = {"2x1": model("(2⊗1)", 2, "non-looped", {"p": (0.2, 0.04)}, params=50000, val_nll=1.8),
                       "6x1": model("(6⊗1)", 6, "non-looped", {"p": (0.6, 0.0)}, params=150000, val_nll=1.4),
                       "2x3": dict(model("(2⊗3)", 6, "looped", {"p": (0.5, 0.03)}, val_nll=1.6), loops=(2, 3))}

    def test_loop_gaps_pair_each_looped_model_with_its_shallow_and_deep_twins(self):
        gaps = lm_study.loop_gaps(self.models, ["p"])
        self.assertEqual(list(gaps), ["2x3"])
        self.assertAlmostEqual(gaps["2x3"]["p"]["gap"], 0.75)

    def test_table_rows(self):
        majority = majority_baselines({"a": {"category": "p", "majority_baseline": 0.1},
                                       "b": {"category": "p", "majority_baseline": 0.2}})
        table = paper_table(self.models, ["2x1", "6x1", "2x3"], ["p"], lm_study.loop_gaps(self.models, ["p"]), majority)
        lines = table.splitlines()
        self.assertEqual(lines[0], "| model | unique params | MFLOPs/token | val log-ppl | p | steps | train s |")
        self.assertEqual(lines[2], "| (2⊗1) | 0.050M | 2.50 | 1.8000 | 20.0 ± 4.0 | 500 | 123 |")
        self.assertEqual(lines[5], "| %Gap of (2⊗3) |  |  |  | 75 ± 8% |  |  |")  # s.e. sqrt(0.001)/0.4 = 0.079
        self.assertEqual(lines[6], "| majority answer |  |  |  | 15.0 |  |  |")

    def test_isoplot_is_svg_with_one_curve_per_model(self):
        svg = isoplot_svg("p", [("(2⊗1)", [(2.0, (0.1, 0.01)), (1.8, (0.2, 0.02))]), ("(2⊗3)", [(1.9, (0.3, 0.0))])])
        root = ET.fromstring(svg)
        polylines = root.findall("{http://www.w3.org/2000/svg}polyline")
        self.assertEqual(len(polylines), 2)
        self.assertEqual(len(polylines[0].get("points").split()), 2)
        # lower perplexity to the right, every point inside the axes (x 60..410, y 30..335)
        xs = [float(c.get("cx")) for c in root.findall("{http://www.w3.org/2000/svg}circle")]
        ys = [float(c.get("cy")) for c in root.findall("{http://www.w3.org/2000/svg}circle")]
        self.assertEqual(xs, [60.0, 410.0, 235.0])  # val_nll 2.0, 1.8, 1.9
        self.assertTrue(all(30 <= y <= 335 for y in ys), ys)


class CrossBlockCosine(unittest.TestCase):
    def test_mean_over_groups_of_consecutive_block_pairs(self):
        layers = [{"a": [1, 0], "b": [1, 2]}, {"a": [0, 1], "b": [3, 4]},
                  {"a": [1, 1], "b": [1, 2]}, {"a": [0, 2], "b": [3, 4]}]
        # group a: pairs (0,2) cos 1/sqrt(2) and (1,3) cos 1; group b: identical blocks, 1
        self.assertAlmostEqual(cross_block_cosine(layers, 2), ((1 / math.sqrt(2) + 1) / 2 + 1) / 2)
        with self.assertRaisesRegex(ValueError, "do not form at least two blocks"):
            cross_block_cosine(layers, 3)

    def test_reads_layer_weights_from_safetensors(self):
        values = struct.pack("<4f", 1, 2, 3, 4)
        header = json.dumps({"__metadata__": {"format": "recur"}, "model.embed_tokens.weight": {
            "dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]}, "model.layers.0.mlp.up_proj.weight": {
            "dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}).encode()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.safetensors")
            with open(path, "wb") as f:
                f.write(struct.pack("<Q", len(header)) + header + values)
            self.assertEqual([{g: list(w) for g, w in layer.items()} for layer in lm_study.layer_weights(path)],
                             [{"mlp.up_proj": [3.0, 4.0]}])


if __name__ == "__main__":
    unittest.main()
