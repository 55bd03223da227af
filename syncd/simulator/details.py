"""Asset details as the reference's full view (`Image`, `Video`, `Audio`, `EditorialContent`,
`EditorialVideoContent`), generated from a seed and the asset's id, so that each asset's
details are the same whatever order they are asked for in."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

_WORDS = (
    "sunset beach ocean city skyline mountain forest river portrait business team office "
    "coffee autumn winter summer spring family travel food market street night light "
    "abstract texture pattern vintage modern aerial drone festival crowd sport stadium"
).split()
_CATEGORIES = (
    ("1", "Animals/Wildlife"),
    ("2", "Buildings/Landmarks"),
    ("5", "Backgrounds/Textures"),
    ("7", "Business/Finance"),
    ("13", "Nature"),
    ("18", "People"),
    ("21", "Technology"),
    ("26", "Transportation"),
)
_EDITORIAL_CATEGORIES = ("News", "Sport", "Entertainment", "Royalty", "Fashion", "Politics")
_GENRES = ("Ambient", "Cinematic", "Corporate", "Electronic", "Hip Hop", "Pop", "Rock")
_MOODS = ("Bright", "Calm", "Dramatic", "Epic", "Playful", "Uplifting")
_INSTRUMENTS = ("Piano", "Guitar", "Strings", "Drums", "Synth", "Bass")
_ARTISTS = ("Fin Collins", "Ava Marsh", "The Quiet Hours", "Nordic Lights", "Sam Okafor")
_BYLINES = ("Joe Bloggs/Shutterstock", "Mark Large/Daily Mail/Shutterstock", "AP/Shutterstock")
_IMAGE_TYPES = ("photo", "photo", "photo", "illustration", "vector")
_VIDEO_SHAPES = (
    ("16:9", 1.778, 1920, 1080),
    ("4:3", 1.333, 1440, 1080),
    ("9:16", 0.5625, 1080, 1920),
)
_FIRST_ADDED = date(2008, 1, 1)
_PREVIEW = "https://image.shutterstock.com/display_pic_with_logo"
_VIDEO_PREVIEW = "https://ak.picdn.net/shutterstock/videos"
_AUDIO_PREVIEW = "https://ak.picdn.net/shutterstock/audio"
_EDITORIAL_PREVIEW = "https://editorial01.shutterstock.com"


def generate(seed: int, media_type: str, media_id: str) -> dict:
    """The full view of the asset `media_id` of `media_type` (a stream name)."""
    rng = random.Random(f"{seed}/{media_type}/{media_id}")
    make = {
        "images": _image,
        "videos": _video,
        "audio": _audio,
        "editorial/images": _editorial_image,
        "editorial/videos": _editorial_video,
    }[media_type]
    return make(rng, media_id)


def _words(rng: random.Random, low: int, high: int) -> list[str]:
    return rng.sample(_WORDS, rng.randint(low, high))


def _sentence(rng: random.Random) -> str:
    return " ".join(_words(rng, 3, 8)).capitalize()


def _added_date(rng: random.Random) -> str:
    return (_FIRST_ADDED + timedelta(days=rng.randrange(0, 5000))).isoformat()


def _categories(rng: random.Random) -> list[dict]:
    return [{"id": cid, "name": name} for cid, name in rng.sample(_CATEGORIES, rng.randint(1, 2))]


def _image(rng: random.Random, media_id: str) -> dict:
    width = rng.randrange(2000, 7000)
    height = rng.randrange(1500, 7000)
    aspect = round(width / height, 4)
    image_type = rng.choice(_IMAGE_TYPES)
    preview = f"{_PREVIEW}/{rng.randrange(1000, 999_999)}/{media_id}/stock-photo-{media_id}.jpg"
    assets: dict = {
        "preview": {"url": preview, "width": 450, "height": max(1, round(450 / aspect))},
        "small_thumb": {"url": preview, "width": 100, "height": max(1, round(100 / aspect))},
        "huge_thumb": {"url": preview, "width": 260, "height": max(1, round(260 / aspect))},
        "small_jpg": _image_size(width, height, 500 / max(width, height), "jpg"),
        "medium_jpg": _image_size(width, height, 1000 / max(width, height), "jpg"),
        "huge_jpg": _image_size(width, height, 1.0, "jpg"),
    }
    if image_type == "vector":
        assets["vector_eps"] = _image_size(width, height, 1.0, "eps")
    has_model_release = rng.random() < 0.4
    return {
        "id": media_id,
        "media_type": "image",
        "description": _sentence(rng),
        "keywords": _words(rng, 4, 12),
        "categories": _categories(rng),
        "contributor": {"id": str(rng.randrange(10**5, 10**8))},
        "image_type": image_type,
        "aspect": aspect,
        "added_date": _added_date(rng),
        "has_model_release": has_model_release,
        "has_property_release": rng.random() < 0.2,
        "is_adult": False,
        "is_editorial": False,
        "is_illustration": image_type != "photo",
        "model_releases": ([{"id": str(rng.randrange(10**6, 10**7))}] if has_model_release else []),
        "releases": ["Model Release"] if has_model_release else [],
        "assets": assets,
    }


def _image_size(width: int, height: int, scale: float, file_format: str) -> dict:
    scale = min(scale, 1.0)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return {
        "width": w,
        "height": h,
        "dpi": 300 if scale == 1.0 else 72,
        "format": file_format,
        "file_size": w * h // 4,
        "is_licensable": True,
    }


def _video(rng: random.Random, media_id: str) -> dict:
    ratio, aspect, width, height = rng.choice(_VIDEO_SHAPES)
    base = f"{_VIDEO_PREVIEW}/{media_id}"
    return {
        "id": media_id,
        "media_type": "video",
        "description": _sentence(rng),
        "keywords": _words(rng, 4, 12),
        "categories": _categories(rng),
        "contributor": {"id": str(rng.randrange(10**5, 10**8))},
        "duration": round(rng.uniform(5, 60), 3),
        "aspect_ratio": ratio,
        "aspect": aspect,
        "added_date": _added_date(rng),
        "has_model_release": rng.random() < 0.3,
        "has_property_release": rng.random() < 0.2,
        "is_adult": False,
        "is_editorial": False,
        "assets": {
            "thumb_jpg": {"url": f"{base}/thumb/1.jpg"},
            "preview_jpg": {"url": f"{base}/thumb/12.jpg"},
            "preview_mp4": {"url": f"{base}/preview/stock-footage-{media_id}.mp4"},
            "sd": {"width": width // 2, "height": height // 2, "fps": 29.97, "format": "mov"},
            "hd": {"width": width, "height": height, "fps": 29.97, "format": "mov"},
        },
    }


def _audio(rng: random.Random, media_id: str) -> dict:
    artist = rng.choice(_ARTISTS)
    published = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 3 * 10**8))
    return {
        "id": media_id,
        "media_type": "audio",
        "title": " ".join(_words(rng, 1, 3)).title(),
        "description": _sentence(rng),
        "keywords": _words(rng, 3, 8),
        "artists": [{"name": artist}],
        "album": {"id": str(rng.randrange(10**4, 10**6)), "title": _sentence(rng)},
        "genres": rng.sample(_GENRES, rng.randint(1, 2)),
        "moods": rng.sample(_MOODS, rng.randint(1, 2)),
        "instruments": rng.sample(_INSTRUMENTS, rng.randint(1, 3)),
        "bpm": rng.randrange(60, 180),
        "duration": rng.randrange(30, 300),
        "contributor": {"id": str(rng.randrange(10**5, 10**8))},
        "is_instrumental": rng.random() < 0.7,
        "is_adult": False,
        "added_date": published.date().isoformat(),
        "published_time": published.isoformat(timespec="seconds"),
        "assets": {
            "preview_mp3": {
                "url": f"{_AUDIO_PREVIEW}/{media_id}/preview/preview.mp3",
                "file_size": rng.randrange(500_000, 5_000_000),
            },
        },
    }


def _editorial_common(rng: random.Random, media_id: str) -> dict:
    title = _sentence(rng)
    taken = date(2010, 1, 1) + timedelta(days=rng.randrange(0, 5000))
    return {
        "id": media_id,
        "title": title,
        "caption": f"{title}. {_sentence(rng)}.",
        "description": _sentence(rng),
        "byline": rng.choice(_BYLINES),
        "keywords": _words(rng, 3, 10),
        "date_taken": taken.isoformat(),
        "categories": [{"name": name} for name in rng.sample(_EDITORIAL_CATEGORIES, 1)],
        "aspect": round(rng.uniform(0.6, 1.8), 3),
    }


def _editorial_image(rng: random.Random, media_id: str) -> dict:
    details = _editorial_common(rng, media_id)
    base = f"{_EDITORIAL_PREVIEW}/thumb/{media_id}"
    width = rng.randrange(2000, 6000)
    height = max(1, round(width / details["aspect"]))
    details["assets"] = {
        "thumb_170": {"url": f"{base}/170.jpg", "width": 170, "height": 113},
        "watermark_450": {"url": f"{base}/450.jpg", "width": 450, "height": 300},
        "original": {"width": width, "height": height, "format": "jpg", "is_licensable": True},
    }
    return details


def _editorial_video(rng: random.Random, media_id: str) -> dict:
    details = _editorial_common(rng, media_id)
    base = f"{_EDITORIAL_PREVIEW}/video/{media_id}"
    details["assets"] = {
        "thumb_jpg": {"url": f"{base}/thumb.jpg"},
        "preview_mp4": {"url": f"{base}/preview.mp4"},
        "original": {"width": 1920, "height": 1080, "fps": 25.0, "format": "mp4"},
    }
    return details


MINIMAL_KEYS = {
    "images": ("id", "media_type", "description", "aspect", "image_type", "assets"),
    "videos": ("id", "media_type", "description", "aspect", "aspect_ratio", "duration", "assets"),
    "audio": ("id", "media_type", "title", "description", "duration", "assets"),
}
"""What `view=minimal` (the default) keeps of the full view; `contributor` too, as the
reference requires it."""


def minimal(media_type: str, details: dict) -> dict:
    keys = (*MINIMAL_KEYS[media_type], "contributor")
    return {key: details[key] for key in keys if key in details}
