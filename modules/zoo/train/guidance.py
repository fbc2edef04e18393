"""Training data that keeps classifier-free guidance on the picture manifold (zoo-shapes).

CFG pushes a prediction past the prompt's, away from the negative prompt's: in latent space,
z_cond + k (z_cond - z_neg). Two things make that safe:

* the autoencoder learns that a latent step past one picture, away from another, decodes to the
  same step in pixels, clipped: decode(z1 + k (z1 - z2)) ≈ clip(x1 + k (x1 - x2)). Without it the
  latent line from green through red goes on to magenta, and "red circle", negative "green",
  draws a magenta one. The pairs are a picture and the same scene recoloured (the direction a
  negative colour word pulls along) or another random picture.
* the text encoder and UNet learn that words outside the caption grammar ("blurry", "lowres",
  any unknown word, spelt out byte by byte by the tokenizer) change nothing: they are mixed into
  captions, and a text of only such words stands for "no caption" like the empty one.

Both are opt-in (txt2img.py flags); the shipped weights use the first (as fine-tunes, at the end of this text)
and not the second. What was measured (centre pixel
of a large red circle on white, decode(z_red + k (z_red - z_other)), k = 1):
  shipped autoencoder:                                 past green (252, 3, 208), past yellow (228, 0, 192)
  it fine-tuned 150 steps with the extrapolation term: past green (255, 0, 223), reconstruction MSE 0.0029 -> 0.0077
  from scratch, 400 steps (batch 16) with the extrapolation and colour-latent terms: past green (238, 0, 69),
      past blue (229, 2, 5), past yellow (242, 0, 190); reconstruction MSE 0.021, still converging
So a fine-tune does not move the hue circle; training from scratch with both terms does, and needs the full
recipe's length (2000 autoencoder steps, then the UNet) to tell whether guidance then stays on colour.
Junk words alone are not the cause: with the shipped model any non-empty negative prompt ("yellow",
"blurry") turns the red circle magenta (DPM++ 2M, CFG 7).
Then (--extrapolation-weight 1 --colour-latent-weight 1 --extrapolation-max 3 --junk-only 0.05 --junk-mixed 0.3):
autoencoder from scratch 1250 steps, then the UNet and text encoder fine-tuned from the shipped ones (--init)
on the new latents: past green (247, 4, 29), past blue (250, 9, 14), past yellow (188, 0, 50) — the target
clip(x1 + (x1 - x2)) is (195, 0, 60) — so "blurry, green" keeps the red circle red with every sampler. But
shapes came out softer (channels 0-2 hold the pooled colour, one channel is left for edges): at 3000 UNet
steps 21 of tests/test_samplers_builtin.py's 65 cases failed (squares with rounded corners), at 5000 steps
12 (DPM++ 2M SDE and SDE Heun on Uniform/SGM Uniform/Simple, PLMS, UniPC), where the shipped model fails only
the one negative-prompt case. Not shipped; the next try: a smaller --colour-latent-weight, or 8 latent
channels, and the UNet for the recipe's full 3500 steps from scratch.
Autoencoders from scratch, 400 steps (batch 32), --extrapolation-twins 1 (every pair a scene and its
recolouring): without the colour-latent term past green is still (255, 180, 94); with --colour-latent-weight 0.3
it is (255, 13, 0) and every other colour stays red too. Reconstruction at 400 steps (MSE 0.014, 23 edge pixels
per picture) is not yet comparable with the shipped 2000-step one (MSE 0.0015, 7.5): the full length decides.

Multistep samplers (PLMS, UniPC) and CFG. Along a DDIM trajectory at CFG 7, lambda*h = sqrt(abar) * mu *
|d sigma|, with mu the top eigenvalue of d eps_cfg / d x (power iteration), is 0.5-0.8 from t = 701 to 151 on
the shipped model (0.15-0.24 at CFG 1): CFG multiplies the change of eps(x, c) - eps(x, negative) with x by 6,
and PLMS's 4-step Adams-Bashforth formula is stable only up to ~0.3 on the negative real axis (growth 1.4-1.7 per
step at 0.5-0.6), so it oscillates with period 2 and draws the wrong colour at CFG > 2. --guidance-smoothness
penalises that change (a random step of x; the caption against a random negative text: "", colour words, junk,
other captions) from --smoothness-from up. Fine-tunes of the shipped model (--init, --freeze-encoder, lr 2e-4,
from t = 300), scored on tests/test_samplers_builtin.py's 52 pairs with PLMS and UniPC added, plus a negative
"yellow" with each sampler:
  weight 2, 500 steps, "" as the only negative: lambda*h 0.2-0.3 everywhere, all 52 pairs right, but a negative
      "yellow" then drew nothing with 8 of 10 samplers and round corners with the other 2
  weight 1.5 / 1.75 / 2, 500 steps, random negatives: 1 / 10 / 2 failures (PLMS's blue square with round corners;
      round corners or nothing under negative "yellow"); weight 1: PLMS draws a purple blob; 2 for 400 or 800
      steps: 3 / 12; from t = 0 (weight 1-5) squares came out round with every sampler.
So the term fixes PLMS's colours but costs shape sharpness under negative prompts; weight 1.5 came closest
(the shipped recipe, below). The autoencoder from scratch with --extrapolation-twins 1 --colour-latent-weight 0.3
(2000 steps: reconstruction MSE 0.0029 against 0.0015, edge error 10.2 against 7.5 pixels) keeps red past green
((247, 4, 38)), and with a UNet trained on it (2500 steps) "blurry, green" keeps the red circle red; but blue
squares came out with round corners with 25 of 52 pairs, and the smoothness term on top of it (weights 1.5-3,
1000 more steps) made red circles square.
The UNet and text encoder from scratch (3500 steps on the shipped autoencoder) with the term on all the way
(weight 1.5 or 2 from t = 300): the text barely steers the picture (nothing drawn at CFG 7 in all 62 cases):
the term is cheapest to satisfy by ignoring the text before the model has learnt to follow it.
Shipped (modules/zoo/train/all.py): the weight 1.5 fine-tune (500 steps, lr 2e-4), then 200 more steps at
lr 5e-5: all 52 pairs and the 11 negative-"yellow" cases right. Over 16 seeds x both prompts (32 pictures):
PLMS 21 (0 before), UniPC 31 (21), DPM++ 2M 31 (29), Euler a 32 (30), DDIM 31 (29). Another 200 steps
after that broke PLMS again (a cyan square), so the setting is narrow. Cost at CFG 5 (bench/zoo_eval.py):
kind / colour / size / background 95.8 / 95.1 / 92.4 / 95.1 % (97.2 / 97.9 / 99.3 / 100 before), Frechet
distance 2.27x the floor (1.52x). "blurry, green" still turns the red circle magenta.
Decoder-only fine-tunes (--freeze-encoder, so the UNet stays valid) with --extrapolation-twins 1 do not fix it:
weight 1, k up to 3, lr 3e-4, 300 steps: red past green decodes (255, 0, 111), but reconstruction MSE 0.0039 and
11.4 edge pixels (0.0015, 7.5); weight 0.3 or 1 (k up to 3 or 6), lr 1e-4, 600 steps: MSE 0.0014 / 0.0026 and
the circle under "blurry, green" still magenta with DPM++ 2M, Euler a and Euler. Its final latent lies off the
data (largest value 7.6 against 4-5 for encoded pictures): the encoder's latent space is what needs changing.
Why the recolouring autoencoder's edges were soft: its constant learning rate (1e-3). A decoder-only stage at 1e-4
(--freeze-encoder, so a UNet trained on its latents stays valid) on the 2000-step one: after 250 steps reconstruction
MSE 0.0013, 4.9 edge pixels, shape rule right on 245 of 256 reconstructions; after 1000 steps 0.0011, 6.1, 244
(before: 0.0029, 10.2, 239; the shipped plain autoencoder 0.0015, 7.5, 243), and red past green still decodes red
((255, 0, 14)). A UNet and text encoder on it (3500 steps, --junk-only 0.05 --junk-mixed 0.3) with that decoder:
"blurry, green" keeps the red circle red with all 11 samplers; 10 of the 63 other cases failed (the SDE samplers'
squares on Uniform / SGM Uniform / Simple, PLMS, 3 under negative "yellow"); over 16 seeds x both prompts Euler 29,
DPM++ 2M 29, Euler a 30, DDIM 29, PLMS 2, UniPC 28. Red circles kept under common negative prompts ("blurry",
"lowres, bad anatomy, worst quality", "blurry, green", "yellow", "blue"; 8 seeds, DPM++ 2M and Euler a) went from
36 of 80 (the shipped model; "blurry" alone: 2 of 8) to 72 of 80 (with the weight 1 fine-tune below).
The smoothness fine-tunes on top (500 steps lr 2e-4, then 200 at 5e-5 where noted), failures of the 63 + the 11
"blurry, green" cases: weight 1.5: 9, then 6 (Euler's seed-1 red circle drawn small with filled corners, on most
schedules); weight 1.25: 6; weight 1: 1 (Euler + Align Your Steps, corner fill 0.31 against the rule's 0.3), then
2 (or 7 after 100 steps at 5e-5); weight 1 for 400 / 600 steps: 9 / 7; weight 0.75: 8. So every fine-tune fixed
PLMS and the SDE squares, and each left a different few Euler cases on the edge of the rule. The weight 1
fine-tune: over 16 seeds Euler 27, DPM++ 2M 26, Euler a 30, DDIM 26, PLMS 26, UniPC 27 (shape errors: the latent
keeps colour in 3 of 4 channels, so shape has less room); CFG 5 unseen prompts kind / colour / size / background
90.3 / 97.9 / 93.1 / 93.8 %, Frechet distance 5.8x the floor.
Not shipped: no variant passed every case. Next: more room for shape in the latent. Autoencoders from scratch,
2000 steps, --extrapolation-twins 1 --extrapolation-max 3: with --colour-latent-weight 0.1 MSE 0.0020, 6.8 edge
pixels, rule 238 of 256, red past green (255, 19, 25); with the extrapolation term alone 0.0022, 7.5, 244,
(240, 6, 4), and after a 250-step decoder stage at 1e-4 0.0013, 5.6, 248 (the best yet), (250, 7, 12).
On each, the UNet and text encoder (3500 steps, junk 0.05 / 0.3; resumed once from the step-2000 checkpoint), the
decoder stage as a recipe step (--init the pipeline, --freeze-encoder --ae-steps 250 --ae-lr 1e-4 --steps 0 with the
autoencoder's terms: colour-latent 0.1 MSE 0.0013, 4.8 edge pixels, rule 248; extrapolation alone 0.0014, 5.7, 244;
both keep red past green), then smoothness fine-tunes. With the weight 1 fine-tune "blurry, green" drew a red
circle with all 11 samplers on both; shape is what failed (cases of the 52 pairs + 11 negative "yellow"; pictures
right over 16 seeds x both prompts, Euler / DPM++ 2M / Euler a / DDIM / PLMS / UniPC, of 32):
  extrapolation alone, weight 1: 4 (the negative-"yellow" blue square's corners); seeds 22 / 22 / 19 / 21 / 20 / 23
      (red circles drawn as squares or crosses; before the fine-tune Euler and DPM++ 2M 18)
  colour-latent 0.1, weight 1: 12 (the seed-2 blue square drawn as two touching squares: corners "unclear", Euler
      on every schedule); seeds Euler 29, DPM++ 2M 29; red kept under the 5 common negatives 70 of 80 (shipped 36)
      then 200 steps at 5e-5: 20; seeds 29 / 31 / 27 / 27 / 28 / 27
  colour-latent 0.1, weight 1.25: 7 (the SDE samplers' seed-2 blue square on Uniform / SGM Uniform / Simple);
      seeds 28 / 29 / 30 / 26 / 28 / 26; then 200 steps at 5e-5: 6; weight 1.5: 10
CFG 5 unseen prompts (bench/zoo_eval.py), kind / colour / size / background: colour-latent 0.1 before the
fine-tunes 91.0 / 100 / 99.3 / 100 %, weight 1 88.2 / 100 / 97.2 / 95.1 %, weight 1.25 88.9 / 100 / 97.2 / 93.8 %
(Frechet distance 5.1x the floor): below the 90 % kind target, where the shipped model is 95.8 (97.2 before its
fine-tunes). So the recolouring autoencoder fixes colour; with the extrapolation term alone the shape cost came
from the junk words: the same two autoencoders with the UNet and text encoder trained without them (3500 steps
from the autoencoder's step-2000 checkpoint, no --junk-* flags) and the 250-step decoder: extrapolation alone
fails only PLMS (2 of the 63 cases) and keeps "blurry, green" red with all 11 samplers; seeds 29 / 32 / 30 / 29
/ 0 / 26 (the shipped model before its fine-tunes: Euler a 30, DPM++ 2M 29, DDIM 29, PLMS 0, UniPC 21); kind /
colour at CFG 5 96.5 / 99.3 % (shipped before its fine-tunes 97.2 / 97.9); red kept under the 5 common
negatives 74 of 80 (shipped 36), so "blurry" needs no junk-word training once the latent extrapolates colour.
Colour-latent 0.1 without junk words: 12 of the 63 failed. Smoothness fine-tunes of the extrapolation-alone one
(failures of 63; "blurry, green" kept a red circle with N of 11 samplers; CFG 5 kind):
  weight 1, 500 steps: 3 (DPM++ 2M SDE Heun's seed-2 blue square); 8 of 11 (Euler a and the two 2M SDEs:
      "unclear" corners); 91.7 %
  weight 1.5, 500 steps: 0; 8 of 11; 90.3 % — then 200 steps at 5e-5 (the shipped recipe): 0; 10 of 11 (Euler a,
      corner fill 0.38); 89.6 %; seeds 29 / 31 / 30 / 29 / 30 / 30 (PLMS 30 against the shipped 21); 73 of 80
  weight 1.25, 500 steps: 0; 10 of 11 (Euler a, 0.38); 91.7 %; seeds Euler 30, DPM++ 2M 31, Euler a 30, DDIM 31,
      PLMS 30, UniPC 30; then 200 steps at 5e-5: 0; 10 of 11 (Euler a again); 600 steps: 1 (Heun's blue square
      under negative "yellow", corners "unclear"); 11 of 11; 88.2 %
  weight 1.4, 500 steps: 0; 10 of 11 (Euler a)
The ones that pass all 63 each lose Euler a's seed-1 red circle under "blurry, green" (corners 0.38 filled, a
rounded square; the same with the other decoder): the one case left between this recipe and a model that passes
every sampler test.
Shipped: the same terms as fine-tunes of the shipped model instead of a new trunk (modules/zoo/train/all.py,
stages txt2img-recolour, -follow, -decoder). The autoencoder fine-tuned with the extrapolation term alone
(--extrapolation-twins 1 --extrapolation-max 3), 600 steps: at lr 3e-4 reconstruction MSE 0.0025, red past green
(238, 0, 20); at 1e-3 0.0038, (255, 0, 17) (the 150-step fine-tune above used the default twins and k up to 2 and
did not move the hue). The UNet and text encoder on its latents (--freeze-encoder, from the shipped ones), 800
steps: without the smoothness term (lr 3e-4) 49 of the 63 cases failed (blue squares with soft corners) and
"blurry, green" kept red with 6 of 11 samplers; with it (weight 1.25 from t = 300, lr 2e-4) 0 failed and 9 of 11
(the two 2M SDEs drew magenta). Then the 250-step decoder stage at 1e-4: 0 of 63 and 11 of 11 (a 200-step
lr 5e-5 smoothness stage instead: 8 of 63, 11 of 11). Over 16 seeds x both prompts Euler 32, DPM++ 2M 32,
Euler a 32, DDIM 31, PLMS 30, UniPC 31 (of 32). CFG 5 unseen prompts with one classifier, kind / colour / size /
background: 93.8 / 89.6 / 92.4 / 97.9 % (the weights before: 95.1 / 94.4 / 90.3 / 92.4 %; colour errors are
neighbouring hues: purple drawn blue, orange yellow); Frechet distance 6.65x the floor (2.24x before).
"""
from __future__ import annotations

import numpy as np

from modules.zoo import shapes

# Words people put in negative prompts (and A1111's own test prompts); none is a caption word.
NEGATIVE_WORDS = (
    "blurry", "blur", "ugly", "lowres", "low res", "bad anatomy", "bad hands", "text", "error", "cropped",
    "worst quality", "low quality", "normal quality", "jpeg artifacts", "signature", "watermark", "username",
    "deformed", "disfigured", "mutated", "mutation", "extra limbs", "poorly drawn", "out of frame",
    "duplicate", "grainy", "noisy", "noise", "oversaturated", "nsfw", "example", "prompt", "negative",
    "masterpiece", "best quality", "highly detailed", "detailed", "4k", "8k", "photo", "painting", "art",
    "simple", "shape", "picture", "image", "beautiful", "bad", "dark", "bright",
)
_CAPTION_WORDS = frozenset(shapes.caption_vocabulary())
_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def junk_word(rng: np.random.Generator) -> str:
    """A negative-prompt word, or a random letter string that is no caption word."""
    if rng.random() < 0.6:
        return NEGATIVE_WORDS[rng.integers(len(NEGATIVE_WORDS))]
    while True:
        word = "".join(rng.choice(_LETTERS, size=int(rng.integers(2, 11))))
        if word not in _CAPTION_WORDS:
            return word


def junk_text(rng: np.random.Generator) -> str:
    return ", ".join(junk_word(rng) for _ in range(int(rng.integers(1, 4))))


def training_text(scene: shapes.Scene, rng: np.random.Generator, dropout: float, junk_only: float,
                  junk_mixed: float) -> str:
    """The text a training picture is paired with: "" (dropout), junk only (also "no caption"), or its
    random caption with junk before or after it (junk_mixed of the time)."""
    u = rng.random()
    if u < dropout:
        return ""
    if u < dropout + junk_only:
        return junk_text(rng)
    text = shapes.random_caption(scene, rng)
    if junk_mixed and rng.random() < junk_mixed:  # (no draw when off: the plain recipe's captions stay the same)
        text = f"{junk_text(rng)}, {text}" if rng.random() < 0.5 else f"{text}, {junk_text(rng)}"
    return text


def negative_text(rng: np.random.Generator) -> str:
    """A text CFG might steer away from: "" (A1111's default), a colour or shape word, junk words, or a random
    caption (the guidance smoothness term compares the model under the caption and under this)."""
    u = rng.random()
    if u < 0.4:
        return ""
    if u < 0.65:
        words = [shapes.COLOUR_NAMES[rng.integers(len(shapes.COLOUR_NAMES))]]
        if rng.random() < 0.3:
            words.append(shapes.SHAPES[rng.integers(len(shapes.SHAPES))])
        return " ".join(words) if rng.random() < 0.5 else f"{junk_text(rng)}, {' '.join(words)}"
    if u < 0.8:
        return junk_text(rng)
    return shapes.random_caption(shapes.sample_scene(rng, two_shape_probability=0.25), rng)


def recoloured(scene: shapes.Scene, rng: np.random.Generator) -> shapes.Scene:
    """The same shapes in other colours (never a held-out kind/colour/position), and half the time
    on another background."""
    new = []
    for shape in scene.shapes:
        options = [c for c in shapes.COLOUR_NAMES
                   if c != shape.colour and (shape.kind, c, shape.position) not in shapes.HELDOUT_COMBOS]
        new.append(shapes.ShapeSpec(shape.kind, options[rng.integers(len(options))], shape.size, shape.position,
                                    shape.jitter))
    background = scene.background
    if rng.random() < 0.5:
        others = [b for b in shapes.BACKGROUND_NAMES if b != background]
        background = others[rng.integers(len(others))]
    return shapes.Scene(tuple(new), background)


def recoloured_images(scenes: list[shapes.Scene], seed: int) -> np.ndarray:
    """uint8 [N, 32, 32, 3]: each scene recoloured (identical for identical arguments)."""
    rng = np.random.default_rng(seed)
    return np.stack([shapes.render(recoloured(scene, rng)) for scene in scenes])
