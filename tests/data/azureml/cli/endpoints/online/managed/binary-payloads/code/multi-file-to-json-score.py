"""Takes several uploaded images (multipart field `file[]`) and answers each one's name and size as JSON."""

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from PIL import Image


def init():
    pass


@rawhttp
def run(req: AMLRequest):
    uploads = req.files.getlist("file[]")
    return {"response": [{"filename": upload.filename, "size": Image.open(upload.stream).size} for upload in uploads]}
