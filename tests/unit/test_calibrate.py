from knowledge_base.calibrate import Probe, ProbeSet, choose
from knowledge_base.retriever import Thresholds


def test_thresholds_separate_in_scope_from_out_of_scope():
    right = [Probe(1, [1, 2, 3], [0.95, 0.90, 0.89]) for _ in range(40)]
    close_call = [Probe(2, [1, 2, 3], [0.91, 0.905, 0.88]) for _ in range(10)]  # wrong top-1, right in top 3
    off_topic = [Probe(None, [4, 5, 6], [0.86, 0.85, 0.84]) for _ in range(20)]
    t, outcome = choose(right + close_call + off_topic)
    assert 0.86 < t.clarify <= 0.91 and t.answer <= 0.95
    assert outcome.oos_answer == 0 and outcome.oos_clarify == 0
    assert outcome.wrong_answer == 0 and outcome.right_answer == 40 / 50
    assert outcome.right_in_clarify == 10 / 50


def test_evaluate_counts_each_kind_of_outcome():
    probes = ProbeSet([Probe(1, [1], [0.99]), Probe(1, [2, 1], [0.99, 0.5]), Probe(None, [3], [0.99])])
    o = probes.evaluate(Thresholds(answer=0.9, margin=0.0, clarify=0.8))
    assert (o.right_answer, o.wrong_answer, o.oos_answer) == (0.5, 0.5, 1.0)


def test_answers_as_much_as_the_wrong_answer_cap_allows():
    sure = [Probe(1, [1, 2], [0.95, 0.80]) for _ in range(80)]
    unsure_right = [Probe(1, [1, 2], [0.90, 0.75]) for _ in range(20)]
    unsure_wrong = [Probe(1, [2, 1], [0.90, 0.75]) for _ in range(20)]
    off_topic = [Probe(None, [3, 4], [0.60, 0.50]) for _ in range(20)]
    probes = sure + unsure_right + unsure_wrong + off_topic
    strict, outcome = choose(probes)  # 3% cap: the unsure band would make 1/6 of the answers wrong
    assert 0.90 < strict.answer <= 0.95 and outcome.right_answer == 80 / 120 and outcome.wrong_answer == 0
    loose, outcome = choose(probes, max_wrong=0.2)
    assert loose.answer <= 0.90 and outcome.right_answer == 100 / 120 and outcome.wrong_answer == 20 / 120
    assert strict.clarify > 0.60 and outcome.oos_clarify == 0  # off-topic questions get no choices either
