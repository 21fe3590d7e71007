import pytest
import torch
from support.distill_fixtures import TINY_STUDENT, TINY_TEACHER
from torch import nn

from distill.models import SelfEnsemble, Student, StudentConfig, Teacher, TeacherConfig, build, canonical, describe


def test_untrained_networks_are_the_identity():
    x = torch.rand(1, 3, 32, 48)
    for model in (build("teacher", **TINY_TEACHER), build("student", **TINY_STUDENT)):
        assert torch.allclose(model(x), x)


def test_feature_maps_align_for_mimicry():
    x = torch.rand(2, 3, 64, 40)
    teacher, student = (
        Teacher(TeacherConfig(width=8, blocks=(1, 1, 1))),
        Student(StudentConfig(channels=16, blocks=3, scale=4, context=0)),
    )
    _, ft = teacher(x, return_features=True)
    _, fs = student(x, return_features=True)
    adapter = nn.Conv2d(student.feature_channels, teacher.feature_channels, 1)
    assert ft.shape == (2, 16, 16, 10)
    assert adapter(fs).shape == ft.shape


@pytest.mark.parametrize("scale", [2, 4])
def test_fold_keeps_the_function(scale):
    torch.manual_seed(0)
    student = Student(StudentConfig(channels=16, blocks=3, scale=scale, context=0))
    for p in student.parameters():
        nn.init.normal_(p, std=0.05)
    x = torch.rand(1, 3, 36, 28)
    before = student(x)
    student.fold()
    assert all(b.conv1 is None for b in student.body)
    assert torch.allclose(student(x), before, atol=1e-5)


def test_a_repconv_student_folds_into_the_plain_network_it_computes():
    """Head and tail trained as three branches fold into one 3×3 convolution each: the same
    function (borders included), the plain student's weights, and it starts as the identity."""
    torch.manual_seed(0)
    rep = Student(StudentConfig(channels=8, blocks=0, scale=2, context=0, expand=16))
    x = torch.rand(1, 3, 30, 26)
    assert torch.equal(rep(x), x)
    for p in rep.parameters():
        nn.init.normal_(p, std=0.1)
    before = rep(x)
    rep.fold()
    plain = Student(StudentConfig(channels=8, blocks=0, scale=2, context=0))
    assert isinstance(rep.head, nn.Conv2d) and isinstance(rep.tail, nn.Conv2d)
    assert rep.state_dict().keys() == plain.state_dict().keys()
    assert torch.allclose(rep(x), before, atol=1e-5)
    plain.load_state_dict(rep.state_dict())
    assert torch.allclose(plain(x), before, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 4])
def test_student_changes_luma_only(scale):
    torch.manual_seed(0)
    student = Student(StudentConfig(channels=16, blocks=2, scale=scale, context=0))
    nn.init.normal_(student.tail.weight, std=0.1)
    x = torch.rand(1, 3, 16, 16)
    delta = student(x) - x
    assert delta.abs().max() > 1e-3
    # (x + r) - x loses float32 precision (~1e-7), so equality is checked to that tolerance.
    assert torch.allclose(delta[:, 0], delta[:, 1], atol=1e-6)
    assert torch.allclose(delta[:, 1], delta[:, 2], atol=1e-6)


def test_describe_round_trips():
    students = (build("student", **TINY_STUDENT), build("student", scale=2, context=0), build("student"))
    models = (build("teacher", **TINY_TEACHER), *students)
    for model in models:
        arch = describe(model)
        again = build(arch.pop("kind"), **arch)
        assert describe(again) == describe(model) == canonical(describe(model))


def test_a_half_resolution_student_packs_2x2_blocks():
    student = Student(StudentConfig(channels=8, blocks=1, scale=2, context=0))
    assert student.head.in_channels == student.tail.out_channels == 4 and student.cfg.size_multiple == 2
    assert student(torch.rand(1, 3, 18, 22)).shape == (1, 3, 18, 22)  # a multiple of 2, not of 4
    with pytest.raises(ValueError, match="scale must be 2 or 4, not 3"):
        Student(StudentConfig(scale=3))


def test_an_architecture_stored_before_a_field_existed_reads_as_it_was():
    stored = {"kind": "student", "channels": 24, "blocks": 1}  # what student-fast.pt (version 1) holds
    assert canonical(stored) == describe(build("student", channels=24, blocks=1, scale=4, context=0))


def test_a_context_branch_sees_further_and_starts_as_a_no_op():
    torch.manual_seed(0)
    student = Student(StudentConfig(channels=8, blocks=0, scale=2, context=8))
    assert student.cfg.size_multiple == 4  # the branch packs the 1/2-resolution features in 2×2 blocks
    x = torch.rand(1, 3, 32, 48)
    nn.init.normal_(student.tail.weight, std=0.1)
    plain = Student(StudentConfig(channels=8, blocks=0, scale=2, context=0))
    plain.load_state_dict({k: v for k, v in student.state_dict().items() if not k.startswith("context.")})
    before = student(x)
    assert torch.allclose(before, plain(x))  # untrained, the branch adds nothing
    assert student.context is not None
    nn.init.normal_(student.context.out.weight, std=0.1)
    after = student(x)
    assert not torch.allclose(after, before)  # trained, the branch changes the picture
    # Receptive field: a change 7 pixels away reaches the centre only through the branch.
    poked = x.clone()
    poked[:, :, 16, 24 + 7] += 0.5
    assert torch.equal(plain(poked)[:, :, 16, 24], plain(x)[:, :, 16, 24])
    assert not torch.equal(student(poked)[:, :, 16, 24], student(x)[:, :, 16, 24])


def test_self_ensemble_commutes_with_flips_and_transposes():
    torch.manual_seed(0)
    teacher = build("teacher", **TINY_TEACHER)
    nn.init.normal_(teacher.tail.weight, std=0.1)  # not the identity, and not symmetric
    ensemble = SelfEnsemble(teacher).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        out = ensemble(x)
        assert not torch.allclose(out, teacher(x), atol=1e-4)  # the views do differ
        # The mean over all views is the same whichever way the input was turned.
        assert torch.allclose(ensemble(x.flip(3)), out.flip(3), atol=1e-5)
        assert torch.allclose(ensemble(x.flip(2)), out.flip(2), atol=1e-5)
        assert torch.allclose(ensemble(x.transpose(2, 3)), out.transpose(2, 3), atol=1e-5)
        assert torch.allclose(ensemble(x.transpose(2, 3).flip(2)), out.transpose(2, 3).flip(2), atol=1e-5)
