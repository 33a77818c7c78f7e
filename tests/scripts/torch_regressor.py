"""A tiny PyTorch regressor: the test saves a state_dict with torch.save into a temporary AZUREML_MODEL_DIR.

Body: {"data": [[x1, x2, x3], ...]}; answer: {"predictions": [y, ...]}, computed under torch.no_grad().
The tensor is returned as it is: the server converts anything with `.tolist()`.
"""

import json
import os

import torch
from torch import nn


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x):
        return self.linear(x).squeeze(-1)


def init():
    global model
    path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "regressor.pt")
    model = Regressor()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval()


def run(raw_data):
    inputs = torch.tensor(json.loads(raw_data)["data"], dtype=torch.float32)
    with torch.no_grad():
        predictions = model(inputs)
    return {"predictions": predictions, "grad": predictions.requires_grad}
