"""hf_local: a tiny random Llama with a locally trained tokenizer, checked against its own logits."""

from __future__ import annotations

import dagster as dg
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from assets.launch import EngineJobsResource
from tests.elicitation.samples_table import Sample, write_samples
from ual_dagster.config.elicitation import HFLocalElicitation
from ual_dagster.config.launchers import SubprocessLauncher
from ual_dagster.elicitation import current_scores, elicit_dataset
from ual_dagster.elicitation.backends.hf_local import model_input_text
from ual_dagster.elicitation.commit import journal_path
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.prompt import ANSWER_PREFIX, render_prompt
from ual_dagster.storage import DuckDBStore
from ual_dagster.train.entry_points import ELICIT_ENTRY

SAMPLES = [Sample(f"Name a fruit number {i}.", "", "apple" if i % 2 else "pear") for i in range(11)]


def build_tiny_model(directory) -> None:
    corpus = [render_prompt("uncertainty_v1", s.instruction, s.input, s.output, 10) for s in SAMPLES]
    corpus += [" ".join(str(i) for i in range(11)), ANSWER_PREFIX]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<s>", "</s>"]))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(directory)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=fast.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)


def test_score_is_the_expected_value_of_the_models_score_token_distribution(store, tmp_path):
    build_tiny_model(tmp_path / "tiny")
    write_samples(store, "hf", SAMPLES)
    cfg = HFLocalElicitation(backend="hf_local", hf_model=str(tmp_path / "tiny"), hf_batch_size=4)
    result = elicit_dataset("hf", cfg, store)
    scores = current_scores(store, "hf", cfg)
    assert result.metadata["rows_by_status"]["ok"] == len(SAMPLES)
    assert result.metadata["forward_passes"] == 3

    # Independent computation: one unpadded forward pass per sample, plain text + answer prefix.
    tok = PreTrainedTokenizerFast.from_pretrained(tmp_path / "tiny")
    model = LlamaForCausalLM.from_pretrained(tmp_path / "tiny").eval()
    digit_ids = [tok.convert_tokens_to_ids(str(s)) for s in range(11)]
    assert tok.unk_token_id not in digit_ids
    for s in SAMPLES:
        text = render_prompt("uncertainty_v1", s.instruction, s.input, s.output, 10) + "\n" + ANSWER_PREFIX
        ids = torch.tensor([tok(text).input_ids])
        with torch.no_grad():
            probs = torch.softmax(model(ids).logits[0, -1], dim=-1)[digit_ids]
        expected = float((probs * torch.arange(11)).sum() / probs.sum()) / 10
        assert scores[s.sample_id] == pytest.approx(expected, abs=1e-5)
    assert len(set(round(v, 6) for v in scores.values())) > 1


def test_chat_template_is_used_when_the_tokenizer_has_one(tmp_path):
    build_tiny_model(tmp_path / "tiny")
    tok = PreTrainedTokenizerFast.from_pretrained(tmp_path / "tiny")
    assert model_input_text(tok, "hello") == ("hello\n" + ANSWER_PREFIX, True)
    tok.chat_template = "{% for m in messages %}<s> {{ m['content'] }} </s>{% endfor %}{% if add_generation_prompt %} ASSISTANT: {% endif %}"
    text, special = model_input_text(tok, "hello")
    assert text == "<s> hello </s> ASSISTANT: " + ANSWER_PREFIX and special is False


def test_on_a_launcher_the_model_runs_as_a_job_that_journals_and_the_step_commits(store, tmp_path):
    """elicitation.launcher subprocess: the job (python -m ual_dagster.elicitation.job_entry) scores
    the pending samples and journals every answer; the step replays the journal into DuckDB. The
    scores are the in-process ones, under the same elicitor (the launcher is not part of it)."""
    build_tiny_model(tmp_path / "tiny")
    write_samples(store, "hf", SAMPLES)
    local = HFLocalElicitation(backend="hf_local", hf_model=str(tmp_path / "tiny"), hf_batch_size=4)
    job_cfg = local.model_copy(update={"launcher": SubprocessLauncher()})
    assert elicitor_fingerprint(job_cfg) == elicitor_fingerprint(local)
    with pytest.raises(RuntimeError, match="starts an engine job: run the uncertainty asset"):
        elicit_dataset("hf", job_cfg, store)  # no Dagster step to start it from
    jobs: list[dict] = []

    @dg.asset
    def uncertainty_hf(context, engine_jobs: EngineJobsResource):
        def run(spec, spec_path, *, fingerprint):
            summary, job = engine_jobs.run(
                context,
                SubprocessLauncher(),
                step="elicit",
                fingerprint=fingerprint,
                module=ELICIT_ENTRY,
                spec_path=spec_path,
                work_dir=spec_path.parent,
            )
            jobs.append(job)
            return summary

        result = elicit_dataset("hf", job_cfg, store, run_job=run)
        return dg.MaterializeResult(metadata={"answered_in_job": result.metadata["answered_in_job"]})

    assert dg.materialize([uncertainty_hf], resources={"engine_jobs": EngineJobsResource.default()}).success
    assert len(jobs) == 1 and jobs[0]["job_name"].startswith("ual-elicit-")
    in_job = current_scores(store, "hf", job_cfg)
    assert len(in_job) == len(SAMPLES)
    assert journal_path(store, "hf").stat().st_size == 0  # every journaled answer is in DuckDB now

    reference = DuckDBStore(tmp_path / "in_process.duckdb")
    write_samples(reference, "hf", SAMPLES)
    elicit_dataset("hf", local, reference)
    assert in_job == pytest.approx(current_scores(reference, "hf", local), abs=1e-6)
