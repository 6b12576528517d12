"""The bundled `priority` set, unit-tested in-process with vLLM's own Scheduler: no engine, no weights.

Needs only pytest and vLLM beside vllm-surgeon (its pytest plugin gives the `surgeon` fixture).
"""

import json

import pytest


@pytest.fixture
def scheduler(tmp_path):
    """A real vLLM Scheduler under `--scheduling-policy priority`, built as vLLM's tests build one."""
    import torch
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    # A model config is all the scheduler reads of a model: no weights, no tokenizer.
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
        "intermediate_size": 128, "num_attention_heads": 1, "num_key_value_heads": 1,
        "num_hidden_layers": 1, "vocab_size": 256, "max_position_embeddings": 256,
    }))
    cache = CacheConfig(block_size=16)
    cache.num_gpu_blocks = 100
    config = VllmConfig(
        model_config=ModelConfig(model=str(tmp_path), skip_tokenizer_init=True, max_model_len=256),
        scheduler_config=SchedulerConfig(
            max_num_seqs=3, max_num_batched_tokens=256, max_model_len=256, is_encoder_decoder=False, policy="priority"
        ),
        cache_config=cache,
    )
    kv_cache = KVCacheConfig(num_blocks=100, kv_cache_tensors=[], kv_cache_groups=[
        KVCacheGroupSpec(["layer"], FullAttentionSpec(block_size=16, num_kv_heads=1, head_size=1, dtype=torch.float32)),
    ])
    return Scheduler(
        vllm_config=config, kv_cache_config=kv_cache, structured_output_manager=StructuredOutputManager(config), block_size=16
    )


# (request id, priority: smaller is served first, arrival time in seconds)
REQUESTS = [("low", 10, 100.0), ("high-early", 0, 105.0), ("high-late", 0, 115.0)]


def served_order(scheduler) -> list[str]:
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    for request_id, priority, arrival in REQUESTS:
        scheduler.add_request(
            Request(request_id, [1, 2, 3], SamplingParams(max_tokens=4), None, arrival_time=arrival, priority=priority)
        )
    return [r.req_id for r in scheduler.schedule().scheduled_new_reqs]


def test_priority_set_serves_an_old_low_priority_request_before_newer_high_priority_ones(surgeon, scheduler, monkeypatch):
    monkeypatch.setenv("VLLM_SURGEON_PRIORITY_AGING", "1.0")  # priority levels a request gains per second waited
    patched = surgeon.apply("priority")  # patches vllm.v1.request and the scheduler in this process, until the test ends

    assert hasattr(patched["vllm.v1.request"].Request, "aged_priority")
    # "low" waited 5 s when "high-early" arrived (10 - 5 > 0: behind it) and 15 s when "high-late" did (ahead).
    assert served_order(scheduler) == ["high-early", "low", "high-late"]


def test_without_the_set_every_high_priority_request_is_served_first(scheduler):
    # The test above patched vLLM in this process; the fixture undid it when that test ended.
    assert served_order(scheduler) == ["high-early", "high-late", "low"]
