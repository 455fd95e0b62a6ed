"""The synthetic attribute-ZSL benchmark ("synth", PROTOCOL.md §4): a seeded generator.

Every image shows one *creature* built from four parts (head, body, wing, tail). Each part has
attribute groups — colour, shape, pattern and (head, wing, tail) size relative to the body — and a
class is a fixed choice of one value per group. Instances deviate from their class's value with a
small probability per group (like CUB's per-image labels), so the class attribute vector is the
percentage of the class's images that show each attribute value. The creature sits at a random
position and scale on a plain background among *distractor* shapes drawn from the same colour,
shape and pattern vocabulary: a model that pools over every patch sees colours and patterns that
belong to no part of the creature.

The output is an xlsa17 directory (PROTOCOL.md §1) so the real-data reader is what reads it::

    <data_root>/synth/                 (synth-tiny/, synth-paper/ for the other presets)
      att_splits.mat                   att, original_att [A, C]; *_loc 1-based; allclasses_names
      res101.mat                       labels [N, 1] 1-based; image_files [N, 1] (no features)
      attributes.txt                   "1 head colour red" ...
      attribute_groups.json            {"source": ..., "groups": {"head colour": [0, 1, ...], ...}}
      images/<class>/<NNNNN>.png       RGB
      masks/<class>/<NNNNN>.png        uint8: 0 background and clutter, k = part k (1-based, see PARTS)
      synth_meta.json                  version, preset, seed, counts, parts, classes, ...

Generation is deterministic: every image is drawn from its own seed derived from ``(seed, index)``,
so the bytes on disk do not depend on the number of worker processes. It writes into a hidden
sibling directory and renames it into place, so an interrupted run never leaves a partial dataset
under the final name.

* :mod:`~zslbench.data.synth.presets` — the vocabulary, attribute groups and size presets;
* :mod:`~zslbench.data.synth.plan` — classes, splits and per-image attribute values;
* :mod:`~zslbench.data.synth.drawing` — one image and its part mask;
* :mod:`~zslbench.data.synth.writing` — images, masks, split files and the meta file of a folder;
* :mod:`~zslbench.data.synth.generate` — generate or reuse ``<data_root>/synth*/``.

Example:
    >>> PRESETS["tiny"].image_size, synth_dir_name("default"), synth_dir_name("tiny")
    (32, 'synth', 'synth-tiny')
    >>> attribute_phrases()[:2]
    ['head colour red', 'head colour green']
"""

from zslbench.data.synth.drawing import Shape, instance_rng, render_instance
from zslbench.data.synth.generate import (SynthResult, ensure_synth, generate_synth, is_complete, meta_matches,
                                          print_synth_summary, read_meta)
from zslbench.data.synth.plan import SynthPlan, plan_dataset
from zslbench.data.synth.presets import (COLOURS, DEFAULT_PRESET, GENERATOR_VERSION, META_FILE, PART_PROPERTIES,
                                         PARTS, PATTERNS, PRESETS, PROPERTY_VALUES, SHAPES, SIZES, AttributeGroup,
                                         SynthPreset, attribute_groups, attribute_phrases, get_preset, group_offsets,
                                         synth_dir_name)
from zslbench.data.synth.writing import default_workers, write_tables

__all__ = ["COLOURS", "DEFAULT_PRESET", "GENERATOR_VERSION", "META_FILE", "PARTS", "PART_PROPERTIES", "PATTERNS",
           "PRESETS", "PROPERTY_VALUES", "SHAPES", "SIZES", "AttributeGroup", "Shape", "SynthPlan", "SynthPreset",
           "SynthResult", "attribute_groups", "attribute_phrases", "default_workers", "ensure_synth",
           "generate_synth", "get_preset", "group_offsets", "instance_rng", "is_complete", "meta_matches",
           "plan_dataset", "print_synth_summary", "read_meta", "render_instance", "synth_dir_name", "write_tables"]
