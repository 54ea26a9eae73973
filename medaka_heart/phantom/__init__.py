"""Synthetic beating-heart videos with exact ground truth (training data and yardstick).

Modules, one job each: `law` (beat times, contraction waveform), `shape` (lobed outlines,
exact polygon moments, rasterisation), `heart` (chamber layout), `motion` (animal drift and
jerks), `texture` (noise fields, camera noise), `render_stereo` and `render_hts` (the two
imaging settings), `presets` (TOML parameter ranges), `truth` (tables in the analysis
schema), `generate` (putting it together), `training` (image/mask pairs on the fly) and
`writer` (the only module writing files).
"""

from .generate import Phantom, PhantomVideo, generate_video, make_phantom
from .law import HeartLaw
from .presets import PhantomParams, PhantomPreset, load_preset, preset_names, sample_params
from .training import TrainingPairs, iter_training_pairs, iter_training_scenes, training_pair
from .writer import write_synth_set

__all__ = [
    "HeartLaw",
    "Phantom",
    "PhantomParams",
    "PhantomPreset",
    "PhantomVideo",
    "TrainingPairs",
    "generate_video",
    "iter_training_pairs",
    "iter_training_scenes",
    "load_preset",
    "make_phantom",
    "preset_names",
    "sample_params",
    "training_pair",
    "write_synth_set",
]
