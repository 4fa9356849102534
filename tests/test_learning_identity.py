"""Embedding model identity: what a store records, and which identities count as the same model."""

from appliance.learning.model_identity import base_name, model_identity, same_model

CATALOG_SHA = "f409ef4f73fcbb9667841965623c5c8524aac33d41b9bf5f3667161fb4a76319"
NAME = "mobilenet_v1_1.0_224_quant_embedding_extractor"


def test_identity_is_file_name_and_sha256(models_dir):
    identity = model_identity(models_dir / f"{NAME}.tflite")
    assert identity == f"{NAME}.tflite sha256:{CATALOG_SHA}"
    assert base_name(identity) == NAME


def test_same_model_rules():
    cpu = f"{NAME}.tflite sha256:{CATALOG_SHA}"
    assert same_model(cpu, f"/any/folder/{NAME}.tflite sha256:{CATALOG_SHA}")
    assert same_model(cpu, f"{NAME}_edgetpu.tflite sha256:" + "1" * 64)  # the Edge TPU twin
    assert same_model(cpu, NAME) and same_model(NAME, f"{NAME}.tflite")  # names without a hash
    assert not same_model(cpu, f"{NAME}.tflite sha256:" + "2" * 64)  # same name, other bytes
    assert not same_model(cpu, "efficientnet-edgetpu-S_quant_embedding_extractor.tflite")
