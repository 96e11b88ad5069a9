"""Curated rendering-only phrases per issue category, for the offline evolver.

Every phrase improves how the room is *rendered* (light, shadows, depth,
texture detail, camera realism) and none names an object, a style, a material or
a colour, so every operator built on this bank respects the hard rules in
:mod:`services.evolution.guardrails` (a test checks each phrase against them).

Per category:

* ``add``: terms the prompt may gain;
* ``negative``: terms the negative prompt may gain;
* ``replace``: (weaker term, stronger term) pairs, applied when the weaker term is
  in the prompt;
* ``emphasise``: existing terms worth moving to the front (diffusion models weigh
  earlier terms more);
* ``remove``: terms that tend to cause the issue and may be dropped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phrases:
    add: tuple[str, ...]
    negative: tuple[str, ...]
    replace: tuple[tuple[str, str], ...] = ()
    emphasise: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


BANK: dict[str, Phrases] = {
    "flat": Phrases(
        add=("realistic depth cues", "ambient occlusion", "contact shadows",
             "subtle depth of field", "layered natural light", "atmospheric depth"),
        negative=("flat image", "no depth", "cardboard cutout look", "collage look",
                  "pasted-in objects"),
        replace=(("photorealistic interior design render", "photorealistic interior photograph"),
                 ("realistic depth", "strong realistic depth")),
        emphasise=("realistic depth", "ambient occlusion", "soft shadows"),
    ),
    "lighting": Phrases(
        add=("soft daylight through the existing windows", "realistic light falloff",
             "physically based lighting", "balanced exposure", "bounce light"),
        negative=("blown highlights", "harsh artificial light", "underexposed",
                  "uneven exposure", "flat lighting"),
        replace=(("accurate global illumination", "physically accurate global illumination"),),
        emphasise=("natural light", "accurate global illumination"),
    ),
    "colors": Phrases(
        add=("true-to-life colour rendition of the existing colours", "accurate white balance",
             "natural colour grading", "faithful tonal range"),
        negative=("washed-out colours", "oversaturated", "colour cast", "desaturated",
                  "changed colours"),
        emphasise=("keep the exact colours and materials of every surface",),
    ),
    "textures": Phrases(
        add=("physically based surfaces", "fine surface detail",
             "micro-imperfections of the existing surfaces", "crisp texture detail",
             "realistic surface reflections"),
        negative=("smeared textures", "plastic look", "blurry surfaces", "waxy surfaces",
                  "repeated tiling pattern"),
        replace=(("realistic textures on all surfaces",
                  "high-fidelity realistic textures on all surfaces"),),
        emphasise=("realistic textures on all surfaces", "physically accurate materials"),
    ),
    "shadows": Phrases(
        add=("soft contact shadows", "shadow direction consistent with the existing light sources",
             "ambient occlusion in corners", "soft penumbra"),
        negative=("missing shadows", "floating objects", "inconsistent shadows",
                  "hard black shadows"),
        emphasise=("soft shadows", "ambient occlusion"),
    ),
    "structure": Phrases(
        add=("identical composition to the input image", "unchanged architecture",
             "straight vertical lines", "every element exactly where it is in the input"),
        negative=("changed layout", "moved furniture", "extra objects", "missing objects",
                  "warped perspective", "bent walls", "redesigned room", "different materials",
                  "changed colours"),
        emphasise=("preserve the exact room layout", "straight architectural lines"),
    ),
    "artifacts": Phrases(
        add=("clean noise-free image", "smooth tonal gradients", "clean edges"),
        negative=("artifacts", "jpeg artifacts", "halos", "banding", "oversharpened",
                  "chromatic aberration", "noise"),
        remove=("8k",),
    ),
}

GENERIC = Phrases(
    add=("professional interior photography", "shot on a full-frame camera",
         "natural lens perspective", "true-to-life"),
    negative=("cgi look", "3d render look", "video game"),
    emphasise=("photorealistic interior design render",),
)
"""Used when no issue was reported (ratings without comments): general photo realism."""
