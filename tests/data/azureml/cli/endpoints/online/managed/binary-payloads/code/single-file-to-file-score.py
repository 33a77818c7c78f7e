"""Takes one uploaded image (multipart field `file`) and answers it as a 128x128 JPEG."""

import io

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from PIL import Image


def init():
    pass


@rawhttp
def run(req: AMLRequest):
    uploads = req.files.getlist("file")
    if not uploads:
        return AMLResponse("No file uploaded", status_code=422)
    thumbnail = Image.open(uploads[0].stream).convert("RGB").resize((128, 128))
    encoded = io.BytesIO()
    thumbnail.save(encoded, format="JPEG")
    answer = AMLResponse(message=encoded.getvalue(), status_code=200)
    answer.mimetype = "image/jpg"
    return answer
