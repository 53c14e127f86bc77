"""The trials behind `run.py`'s defaults and arms, typed in by hand.

Each session's trial runs, newest first, as the report quotes them:
target *validation* accuracy % (what they were judged on; nothing was
chosen on the test split). `report.render` appends `TRIALS` to the report.
"""

from __future__ import annotations

# Trials after the run in the results file (2026-11-30, fifth and sixth
# sessions; 40 epochs, Adam 1e-3, 1 thread). Not in the repository:
# /tmp/exp17/cdan.py and /tmp/exp16/selftrain.py.
CDAN_TRIALS = [
    "### After this run: conditional alignment and self-training, not adopted",
    "",
    "The question: does aligning features jointly with the predictions "
    "(CDAN, Long et al., NeurIPS 2018; the reference code's randomized "
    "multilinear map to 1024 dimensions, the classifier's softmax detached, "
    "entropy conditioning that weights confident examples more) close more "
    "of the gap than DANN, whose adversary it extends? Same model, data and "
    "discriminator as the dann arm.",
    "",
    "| arm | largest weight | seed | target val % | target test % | source % "
    "| domain accuracy, last epoch |",
    "|---|---|---|---|---|---|---|",
    "| cdan+e | 1 | 0 | 36.5 | 34.5 | 97.5 | 0.82 |",
    "| cdan+e | 1 | 1 | 34.0 | 33.75 | 95.75 | 0.85 |",
    "| cdan (no entropy) | 0.3 | 0 | 35.0 | 31.0 | 92.0 | 0.87 |",
    "",
    "Above DANN at its defaults on test (24.8) and source only (28.8), level "
    "with MMD at its defaults (33.6), below MMD at weight 10 (44.4); on "
    "target validation, below DANN's seeds 0 and 1 (42.0, 35.0). Not worth "
    "a fourth method for this shift: the discriminator still told the "
    "domains apart 82-87% of the time at the end.",
    "",
    "Self-training (the previous session, after this run; /tmp/exp16/"
    "selftrain.py): start from mmd at weight 10, then 3 rounds that add the "
    "30%, 60% and 90% most confident target images of each predicted class, "
    "with their predicted labels, to the source, 10 epochs each. Target test "
    "% after each round (information only; judged on test, so not a "
    "choice): seed 0, 52.0 -> 55.0 -> 59.5 -> 58.25, its pseudo-labels 89, "
    "80 and 70% right; seed 1, 41.25 -> 41.25 -> 40.5 -> 37.75, 87, 65 and "
    "50% right. It helps from a good start and confirms its own errors from "
    "a poor one; a first round only, or a confidence threshold, is the lead.",
]

# Trials of the session that added the collapse guard (2026-11-30, fourth
# session's follow-up; seed 0 unless said; 40 epochs, Adam 1e-3, every
# other setting at adapt_domain's defaults). From /tmp/exp16/r*.log.
WEIGHT_TRIALS = [
    "### The weight, entropy, and what a collapse looks like",
    "",
    "The question: does any weight or one added term make a method close "
    "much more of the gap, and is it a default or a choice for the user? "
    "Same run setup as the arms above; target validation accuracy %.",
    "",
    "| arm | largest weight | seeds | target val % | target test % | notes |",
    "|---|---|---|---|---|---|",
    "| mmd | 1 (default) | 0, 1, 2 | 42.7 (47.5, 44.5, 36.0) | 33.6 | as in this run |",
    "| mmd | 3 | 0, 1, 2 | 46.5 (49, 48, 42.5) | 37.8 (38.5, 38.25, 36.75) | |",
    "| mmd | 5 | 0, 1, 2 | 48.3 (51, 49.5, 44.5) | 40.2 (41.75, 38.75, 40) | |",
    "| **mmd** | **10** | 0, 1, 2 | 54.0 (61.5, 52.0, 48.5) | 44.4 (52.0, "
    "41.25, 40.0) | source 97.3; task loss 0.36 at the end (0.02 at 1) |",
    "| mmd | 20 | 0 | 10.5 | 8.25 | collapsed: task loss back at ln 10 "
    "(2.30) by epoch 5, source accuracy 10% |",
    "| mmd | 20, with the collapse guard | 0 | 38.5 | | stopped after epoch "
    "4, epoch 2's weights back |",
    "| mmd | 30 | 0 | 10.5 | 8.25 | collapsed |",
    "| mmd + target entropy 0.01 | 1 | 0 | 46.0 | 37.25 | |",
    "| mmd + target entropy 0.1 | 1 | 0 | 11.5 | 13.0 | target predictions "
    "collapsed to few classes |",
    "| mmd + target entropy 0.01 | 10 | 0 | 57.0 | 50.0 | below mmd 10 alone |",
    "| dann | 1 (default) | 0, 1, 2 | 33.0 (42.0, 35.0, 22.0) | 24.8 | "
    "as in this run |",
    "| dann | 0.3 | 0, 1, 2 | 36.7 (39.5, 39.5, 31.0) | 32.0 (35.0, 32.0, 29.0) | |",
    "| dann | 3 | 0 | 25.5 | 22.0 | source 87.3 |",
    "| dann, discriminator 256 x 256 + dropout 0.5 | 1 | 0 | 26.0 | 18.25 | "
    "the cheaper discriminator: worse |",
    "| dann + target entropy 0.01 | 1 | 0 | 41.0 | 30.25 | |",
    "| dann + target entropy 0.1 | 1 | 0 | 42.5 | 33.5 | |",
    "| coral | 3 | 0 | 32.5 | 25.5 | |",
    "| coral | 10 | 0 | 28.0 | 24.75 | |",
    "",
    "Target entropy: the mean entropy of the target predictions, times the "
    "ramped weight, added to the loss (MinEnt / VADA's conditional entropy "
    "at VADA's small weights); it did not add to either method. MMD gains "
    "with its weight up to 10 on this shift and collapses from 20, where "
    "the two-moons test shift does best at 0.2 and over-aligns at 1: the "
    "best weight depends on the model and the shift by two orders of "
    "magnitude, so the default stays the reference recipe's (1) and the "
    "arms above at other weights show what choosing it on labelled target "
    "validation data reaches. What the collapse taught: a weight a little "
    "too large does not degrade gracefully, it destroys the classifier "
    "within a few epochs (source accuracy 10%) and the run carried on to "
    "the end as if nothing happened. `adapt_domain` now stops such a run "
    "and returns its best epoch, with a warning that names the weight "
    "(`tltf/training/domain/guard.py`).",
]

# Trials of the session that found why adaptation fell below source only
# (target *validation* accuracy %, which is what they were judged on; 40
# epochs, Adam 1e-3 unless said). Typed in by hand from /tmp/h3/results.jsonl.
SESSION_TRIALS = [
    "### Why adaptation fell below source only, and what changed",
    "",
    "Checked first, and found right (no bug): the reversed gradient reaches "
    "every base variable, equal to minus the discriminator loss's gradient "
    "(cosine -1), and a step along it raises the discriminator's loss; the "
    "extractor shares the model's variables; the discriminator's optimizer "
    "updates it; the ramp counts steps over epochs x steps per epoch; target "
    "batches are reshuffled each pass and go through the same in-model "
    "preprocessing; the model scored is the adapted one. Tests now hold the "
    "first of these.",
    "",
    "Cause: the discriminator (2 x 256, no dropout) told the domains apart "
    "within the first epoch (accuracy 0.95-0.98 while the ramp was still at "
    "0.06-0.2) and saturated (loss 0.01 -> 0.000). The reversed gradient is "
    "proportional to that loss's slope, sigmoid(logit) - label, so it "
    "vanished: with SGD the features never adapted (DANN = source only), "
    "with Adam the rare large gradients of a saturated game came through "
    "normalised, as jolts (discriminator loss 0.01 -> 2.9, task loss "
    "0.17 -> 0.67 between epochs), which cost target accuracy. Neither the "
    "paper's optimisation (SGD momentum 0.9, 0.01 / (1 + 10 p)^0.75 for the "
    "model and the discriminator alike), nor THUML's 1024 x 2 BatchNorm "
    "discriminator, nor 5x longer training changed that: the discriminator "
    "stayed at 1.00. The reference DANN / CDAN adversarial network (1024 -> "
    "1024 -> 1, ReLU, dropout 0.5 after each hidden layer) stays in the game "
    "(accuracy 0.65-0.81 at the end, loss 0.40-0.54) and DANN then edged "
    "past source only in these trials (36.8 against 35.2), though not in the "
    "final run above (33.0: seed 2 fell to 22.0; with its discriminator "
    "initialised otherwise, seed 2 had scored 35.5): DANN's outcome here "
    "still swings by +-10 points with the initialisation, as adversarial "
    "training does on 1197 images. MMD at the weight the reference DAN "
    "implementation "
    "uses (THUML's, trade-off 1 on the *sum* of five Gaussian kernels; tltf "
    "had averaged them, i.e. a fifth of it) beats source only on every seed.",
    "",
    "| arm | setting | epochs | seeds | target val % | discriminator acc. "
    "(last epoch) | notes |",
    "|---|---|---|---|---|---|---|",
    "| source only | Adam | 20 | 0 | 35.5 | | |",
    "| source only | Adam | 40 | 0, 1, 2 | 35.2 (35.0, 36.5, 34.0) | | |",
    "| source only | Adam | 100 | 0 | 35.0 | | |",
    "| source only | paper's SGD | 100 | 0 | 36.0 | | |",
    "| dann, 2 x 256 | Adam | 20 | 0 | 34.5 | 0.994 | |",
    "| dann, 2 x 256 | Adam | 40 | 0 | 30.0 | 0.995 | 0.95 after epoch 1; loss jolts |",
    "| dann, 2 x 256 | Adam | 100 | 0 | 35.5 | 1.000 | loss 0.000 |",
    "| dann, 2 x 256 | paper's SGD, model and discriminator | 40 | 0 | 34.5 "
    "| 0.999 | 0.98 from epoch 2 |",
    "| dann, 2 x 256 | paper's SGD | 100 | 0 | 35.5 | 1.000 | |",
    "| dann, THUML 1024 x 2 + BatchNorm | paper's SGD | 100 | 0 | 34.5 | 1.000 | |",
    "| dann 0.1, 2 x 256 | Adam | 40 | 0 | 38.0 | 0.975 | |",
    "| **dann, 1024 x 2 + dropout 0.5** | Adam | 40 | 0, 1, 2 | 36.8 "
    "(38.0, 37.0, 35.5) | 0.79, 0.81, 0.65 | not saturated |",
    "| dann, 1024 x 2 + dropout 0.5 | Adam | 80 | 0 | 37.5 | 0.64 | longer: no gain |",
    "| entropy minimisation alone (weight 1, no alignment) | Adam | 40 | 0 | "
    "8.5 | | collapsed to few classes |",
    "| dann + entropy 1 | Adam | 40 | 0 | 15.5 | 0.995 | |",
    "| mmd (mean of kernels) 1 + entropy 1 | Adam | 40 | 0 | 8.0 | | |",
    "| mmd, mean of kernels, weight 10 (= sum, weight 2) | Adam | 40 | 0, 1, "
    "2 | 43.7 (45.0, 47.0, 39.0) | | source 98.2 |",
    "| **mmd, sum of kernels, weight 1 (THUML's DAN)** | Adam | 40 | 0, 1, 2 "
    "| 42.8 (48.0, 44.5, 36.0) | | source 98.0 |",
    "",
    "Paper's SGD: momentum 0.9, rate 0.01 / (1 + 10 p)^0.75 at progress p, "
    "the discriminator at the same rate. Entropy minimisation (MinEnt, "
    "Grandvalet & Bengio 2005; the target entropy term of RTN and VADA) "
    "reinforces the source model's target guesses; with ~35% of them right "
    "here it collapsed the target predictions, so it was not added. "
    "Changed in tltf: the default discriminator (1024 x 2, dropout 0.5), MMD "
    "sums its kernels, one forward pass over both domains (DANN step cost), "
    "CORAL from batch x batch Gram matrices instead of d x d covariances "
    "(the same value; d = 3072 here). Not found: a setting of CORAL that "
    "helps (not retried in this session).",
]

# Trial runs before the final one (same code; seed 0; target *validation*
# accuracy %, which is what they were judged on). Typed in by hand.
TRIALS = [
    "## Trials beside this run",
    "",
    *CDAN_TRIALS,
    "",
    *WEIGHT_TRIALS,
    "",
    *SESSION_TRIALS,
    "",
    "### Earlier trials (first version of `adapt_domain`, 10 epochs)",
    "",
    "Trial runs, seed 0, judged on target *validation* accuracy % (the "
    "trial logs printed test accuracy too; nothing was chosen on it). They "
    "ran on the losses as they were then: CORAL with the paper's "
    "1 / (4 d^2) (values around 1e-4 here, hence weights up to 10000), MMD "
    "as the sum of its five kernels (as today's), a 2 x 256 discriminator "
    "without dropout, and two forward passes per step.",
    "",
    "The shift itself, source only, 10 epochs: textures of mid-grey noise "
    "and fine gratings over the blurry 8x8 -> 32x32 digits: 6.0; random "
    "colour and contrast per texture, coarser gratings: 14.5; and strokes "
    "sharpened to MNIST's nearly binary ink (the shift used): 32.0. Both "
    "changes bring the shift toward MNIST-M's (source only 52% there); on "
    "the first two, no method beat source only by more than 3 points "
    "(weights 0.1-100).",
    "",
    "| features aligned | arm, largest weight | target val % | notes |",
    "|---|---|---|---|",
    "| last of 2 hidden layers (100, 100) | source only | 33.0 | |",
    "| (100, 100) | oracle | 94.5 | |",
    "| (100, 100) | dann 1 | 22.5 | discriminator 0.97 accurate |",
    "| (100, 100) | dann 0.3 | 23.0 | discriminator loss 11.5, task loss 2.0: "
    "diverged |",
    "| (100, 100) | mmd 1 | 26.0 | probe 0.47: aligned, but classes mixed |",
    "| (100, 100) | coral 10 | 36.0 | |",
    "| flattened conv features (no hidden) | source only | 36.0 | |",
    "| conv | dann 1 | 20.5 | discriminator 1.00 accurate: saturated |",
    "| conv | **dann 0.1** | 40.0 | |",
    "| conv | dann 0.3, paper's 1 x 100 discriminator | 33.5 | |",
    "| conv | dann 1, paper's 1 x 100 discriminator | 20.5 | |",
    "| conv | mmd 1 | 35.0 | |",
    "| conv | mmd 10 | 53.0 | |",
    "| conv | **mmd 30** | 54.5 | |",
    "| conv | mmd 100 | 10.5 | features collapsed (task loss 2.30) |",
    "| conv | coral 10 | 36.0 | |",
    "| conv | **coral 1000** | 38.5 | |",
    "| conv | coral 10000 | 7.0 | features collapsed (task loss 2.30) |",
    "",
    "Best in the trials (bold): no hidden units, i.e. aligning the flattened "
    "conv features, which is what align='auto' now picks when the base "
    "trains. The weights that worked sat just below a collapse of the "
    "features (task loss 2.30, chance accuracy).",
]
