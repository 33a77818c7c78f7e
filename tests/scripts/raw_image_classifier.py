"""@rawhttp image scoring, the documentation's binary-data pattern: an image as raw bytes or a multipart field.

GET answers a usage text. POST takes the image as the body (`application/octet-stream` or `image/*`) or as the
multipart file field "image", and answers a prediction from a tiny deterministic "classifier": the mean
brightness decides the label. Anything else gets a 400 or 415 AMLResponse that says what to send.
"""

import io

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from PIL import Image, ImageStat, UnidentifiedImageError

USAGE = (
    "POST an image: the raw bytes (Content-Type: application/octet-stream or image/png), "
    'or a multipart form with the file field "image".'
)


def init():
    global labels
    # The "model": upper bounds of mean brightness (0-255) for each label.
    labels = [(85.0, "dark"), (170.0, "medium"), (256.0, "bright")]


def _image_bytes(request):
    if "image" in request.files:
        return request.files["image"].read()
    if request.mimetype == "application/octet-stream" or request.mimetype.startswith("image/"):
        return request.get_data()
    return None


@rawhttp
def run(request: AMLRequest):
    if request.method == "GET":
        return AMLResponse(USAGE, 200)
    if request.method != "POST":
        return AMLResponse(f"{request.method} is not supported. {USAGE}", 405, {"Allow": "GET, POST"})
    data = _image_bytes(request)
    if data is None:
        return AMLResponse(f"No image in this {request.mimetype or 'empty'} request. {USAGE}", 415)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        return AMLResponse({"error": f"not an image: {exc}"}, 400, json_str=True)
    brightness = ImageStat.Stat(image.convert("L")).mean[0]
    label = next(name for bound, name in labels if brightness < bound)
    return {
        "label": label,
        "brightness": round(brightness, 3),
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "format": image.format,
    }
