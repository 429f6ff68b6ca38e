"""Storage presentation contexts for C-GET: stored compressed instances arrive as stored.

In a C-GET the peer sends each instance on one of the storage contexts we
proposed, with that context's one accepted transfer syntax. Many peers
(pynetdicom's ``qrscp``, dcmtk's ``dcmqrscp``, most PACS) accept one transfer
syntax per context, the first of ours they support, and send a compressed
instance only on a context whose syntax is the instance's own: one context per
SOP class listing all syntaxes makes them accept Explicit VR Little Endian and
then fail every compressed instance (0xA702, "unable to perform sub-operations").

So :func:`storage_contexts` proposes, for each SOP class that may hold images,
one context for the uncompressed syntaxes plus one context per compressed
syntax, within the 128-context limit of an association (PS3.8 9.3.2.2):
syntaxes the C-FIND listing said are stored come first (AvailableTransferSyntaxUID,
when the peer returns it), then the common ones. Which classes: those the listing
named (SOPClassUID), else those of the listed modalities (:data:`MODALITY_CLASSES`,
plus Secondary Capture). Every other storage class gets one context with all
syntaxes while room is left, so non-image objects (SR, SEG, RT...) still arrive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import lru_cache, partial
from typing import Any

from pydicom import uid as sop_class
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import build_context
from pynetdicom.presentation import PresentationContext, StoragePresentationContexts

from dicomstation.models import InstanceRef
from dicomstation.nodes.dimse_assoc import MAX_CONTEXTS, RECEIVE_TRANSFER_SYNTAXES

__all__ = [
    "COMPRESSED_PRIORITY",
    "MODALITY_CLASSES",
    "OTHERS_RESERVE",
    "STORED_KEYS",
    "UNCOMPRESSED",
    "get_context_rounds",
    "get_storage_contexts",
    "ladder",
    "listing_json",
    "listing_names_kinds",
    "modality_contexts",
    "storage_contexts",
]

#: Syntaxes any peer can send an uncompressed instance in (one context for them).
UNCOMPRESSED: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
#: Uncompressed syntaxes that also get a context of their own (see :func:`_ranked`).
_OWN_UNCOMPRESSED: tuple[UID, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
#: Encoded syntaxes, each on a context of its own (as is Explicit VR Little Endian),
#: most common in archives first.
COMPRESSED_PRIORITY: tuple[UID, ...] = (
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGBaseline8Bit,
    JPEG2000,
    JPEGLSLossless,
    RLELossless,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLSNearLossless,
    DeflatedExplicitVRLittleEndian,
)

_SC = (sop_class.SecondaryCaptureImageStorage,)
#: Image storage classes by Modality (0008,0060), for peers that do not return SOPClassUID.
MODALITY_CLASSES: Mapping[str, tuple[str, ...]] = {
    "CT": (
        sop_class.CTImageStorage,
        sop_class.EnhancedCTImageStorage,
        sop_class.LegacyConvertedEnhancedCTImageStorage,
    ),
    "MR": (
        sop_class.MRImageStorage,
        sop_class.EnhancedMRImageStorage,
        sop_class.LegacyConvertedEnhancedMRImageStorage,
    ),
    "US": (sop_class.UltrasoundImageStorage, sop_class.UltrasoundMultiFrameImageStorage),
    "CR": (sop_class.ComputedRadiographyImageStorage,),
    "DX": (
        sop_class.DigitalXRayImageStorageForPresentation,
        sop_class.DigitalXRayImageStorageForProcessing,
    ),
    "MG": (sop_class.DigitalMammographyXRayImageStorageForPresentation,),
    "XA": (sop_class.XRayAngiographicImageStorage,),
    "RF": (sop_class.XRayRadiofluoroscopicImageStorage,),
    "NM": (sop_class.NuclearMedicineImageStorage,),
    "PT": (sop_class.PositronEmissionTomographyImageStorage, sop_class.EnhancedPETImageStorage),
    "SM": (sop_class.VLWholeSlideMicroscopyImageStorage,),
    "OT": (
        *_SC,
        sop_class.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        sop_class.MultiFrameTrueColorSecondaryCaptureImageStorage,
    ),
    "XC": (sop_class.VLPhotographicImageStorage,),
    "ES": (sop_class.VLEndoscopicImageStorage,),
    "OP": (sop_class.OphthalmicPhotography8BitImageStorage,),
}
#: Image classes assumed when the listing names neither classes nor modalities.
_DEFAULT_IMAGE_CLASSES = (
    *MODALITY_CLASSES["CT"][:1],
    *MODALITY_CLASSES["MR"][:2],
    *_SC,
    *MODALITY_CLASSES["US"],
)
#: Non-image classes proposed before the rest of pynetdicom's storage list.
_COMMON_OTHERS = (
    sop_class.SegmentationStorage,
    sop_class.BasicTextSRStorage,
    sop_class.EnhancedSRStorage,
    sop_class.ComprehensiveSRStorage,
    sop_class.Comprehensive3DSRStorage,
    sop_class.KeyObjectSelectionDocumentStorage,
    sop_class.GrayscaleSoftcopyPresentationStateStorage,
    sop_class.RTStructureSetStorage,
    sop_class.RTPlanStorage,
    sop_class.RTDoseStorage,
    sop_class.EncapsulatedPDFStorage,
    sop_class.SpatialRegistrationStorage,
    sop_class.RawDataStorage,
    sop_class.TwelveLeadECGWaveformStorage,
)
#: When the classes are unknown, at least this many contexts are kept for other classes.
OTHERS_RESERVE = 40


def _image_classes(classes: Sequence[str], modalities: Iterable[str]) -> list[str]:
    if classes:
        return list(dict.fromkeys(classes))
    named = [uid for m in dict.fromkeys(modalities) for uid in MODALITY_CLASSES.get(m.upper(), ())]
    if not named:
        return list(_DEFAULT_IMAGE_CLASSES)
    return list(dict.fromkeys([*named, *_SC]))


def _ranked(stored: Collection[str], lead: str | None = None) -> list[str]:
    """Syntaxes with a context of their own: ``lead``, those said stored, the usual order.

    Both little endian uncompressed syntaxes have one too: a peer preferring Implicit
    VR on the shared uncompressed context (pynetdicom's qrscp does) then still sends
    an explicit instance as it is stored, and one accepting Explicit VR there
    (Orthanc does) an implicit one, instead of converting each instance it sends.
    """
    first = [uid for uid in (lead or "", *stored) if uid and uid not in UNCOMPRESSED]
    return list(dict.fromkeys([*first, *_OWN_UNCOMPRESSED, *COMPRESSED_PRIORITY]))


def ladder(stored: Mapping[str, Collection[str]] | None = None) -> list[str]:
    """The compressed syntaxes to lead with, one retry round each (see :func:`storage_contexts`).

    Some peers (dcmtk's ``dcmqrscp``) send every instance of a class on the first
    context they accepted for it, converting if they can and failing the
    sub-operation if not; a round whose contexts put one syntax first lets them
    send the instances stored in it. Syntaxes said to be stored come first.
    """
    said = [uid for syntaxes in (stored or {}).values() for uid in syntaxes]
    return [uid for uid in _ranked(said) if uid not in UNCOMPRESSED]


@lru_cache(maxsize=4096)
def _context(uid: str, syntaxes: tuple[str, ...]) -> PresentationContext:
    """A storage context, built (and its UIDs validated) once per process.

    Shared: associations propose copies of the contexts they are given
    (``AE.associate`` and ``OwnedAE.associate`` both copy), never these.
    """
    return build_context(uid, list(syntaxes))


def storage_contexts(
    classes: Sequence[str] = (),
    *,
    modalities: Iterable[str] = (),
    stored: Mapping[str, Collection[str]] | None = None,
    budget: int = MAX_CONTEXTS - 1,
    lead: str | None = None,
) -> list[PresentationContext]:
    """The storage contexts to propose for a C-GET (with SCP role for each class).

    Parameters
    ----------
    classes : sequence of str
        SOP classes the listing named (empty: unknown).
    modalities : iterable of str
        Modalities the listing named, used when ``classes`` is empty.
    stored : mapping of str to collection of str, optional
        Transfer syntaxes said to be stored, by SOP class (prioritised).
    budget : int
        How many contexts may be proposed (128 less the Get model's own).
    lead : str, optional
        A compressed syntax whose context comes first for every image class
        (a retry round, see :func:`ladder`); by default the uncompressed one does.

    Returns
    -------
    list of PresentationContext
        One uncompressed context per class plus one per compressed syntax for
        the image classes, as room allows; other storage classes get one
        all-syntax context each only when ``classes`` was empty.
    """
    images = _image_classes(classes, modalities)[:budget]
    others = [] if classes else _other_classes(images)
    ranked = {uid: _ranked((stored or {}).get(uid, ()), lead) for uid in images}
    reserve = min(len(others), OTHERS_RESERVE)
    spare = max(0, budget - len(images) - reserve)
    extra: dict[str, list[str]] = {uid: [] for uid in images}
    for rank in range(max((len(r) for r in ranked.values()), default=0)):
        for uid in images:
            if spare > 0 and rank < len(ranked[uid]):
                extra[uid].append(ranked[uid][rank])
                spare -= 1
    contexts: list[PresentationContext] = []
    for uid in images:
        rest = [ts for ts in ranked[uid] if ts not in extra[uid]]
        own = [_context(uid, (ts,)) for ts in extra[uid]]
        first = own[:1] if lead and extra[uid][:1] == [lead] else []
        contexts += [*first, _context(uid, (*UNCOMPRESSED, *rest)), *own[len(first) :]]
    all_syntaxes = tuple(RECEIVE_TRANSFER_SYNTAXES)
    room = budget - len(contexts)
    contexts += [_context(uid, all_syntaxes) for uid in others[: max(0, room)]]
    return contexts


def _other_classes(images: Sequence[str]) -> list[str]:
    """Storage classes besides ``images``: the common non-image ones first."""
    listed = [str(cx.abstract_syntax) for cx in StoragePresentationContexts]
    ordered = dict.fromkeys([*_COMMON_OTHERS, *listed])
    return [uid for uid in ordered if uid not in images]


#: Extra IMAGE-level C-FIND keys that say what is stored (for the C-GET's contexts).
STORED_KEYS = ("Modality", "AvailableTransferSyntaxUID")
_MODALITY, _PATIENT_ID, _AVAILABLE_TS = "00080060", "00100020", "00083002"


def listing_json(found: Dataset) -> dict[str, Any]:
    """The few listed attributes kept beside an InstanceRef: PatientID, Modality, syntaxes."""
    kept: dict[str, Any] = {}
    for tag, keyword, vr in (
        (_PATIENT_ID, "PatientID", "LO"),
        (_MODALITY, "Modality", "CS"),
        (_AVAILABLE_TS, "AvailableTransferSyntaxUID", "UI"),
    ):
        value = found.get(keyword)
        values = [value] if isinstance(value, str) else list(value or [])
        values = [str(v).strip() for v in values if str(v).strip()]
        if values:
            kept[tag] = {"vr": vr, "Value": values}
    return kept


def _listed(ref: InstanceRef, tag: str) -> list[str]:
    return [str(v) for v in ref.json.get(tag, {}).get("Value", [])]


def listing_names_kinds(listing: Sequence[InstanceRef] | None) -> bool:
    """True if the listing named SOP classes or modalities (else ask the series' modalities)."""
    return any(r.sop_class_uid or _listed(r, _MODALITY) for r in listing or ())


def get_context_rounds(
    listing: Sequence[InstanceRef] | None, modalities: Sequence[str] = ()
) -> list[Callable[[], list[PresentationContext]]]:
    """Builders of each C-GET round's storage contexts: uncompressed first, then each compressed.

    Builders, so a round's 127 contexts are made only when that round runs (most
    retrieves need only the first). Only one round when the listing is unknown
    (nothing to tell what is missing).
    """
    leads: list[str | None] = [None]
    if listing:
        leads += ladder(_stored(listing))
    return [partial(get_storage_contexts, listing, modalities, lead) for lead in leads]


def _stored(refs: Sequence[InstanceRef]) -> dict[str, list[str]]:
    """Syntaxes the listing said are stored, by SOP class, most frequent first."""
    stored: dict[str, list[str]] = {}
    for ref in refs:
        for syntax in _listed(ref, _AVAILABLE_TS):
            stored.setdefault(ref.sop_class_uid, []).append(syntax)
    return {uid: [ts for ts, _ in Counter(v).most_common()] for uid, v in stored.items()}


def modality_contexts(modalities: Sequence[str]) -> list[PresentationContext]:
    """Storage contexts for a C-GET with no listing, by the modalities of what is asked.

    When every modality names its image classes (:data:`MODALITY_CLASSES`), those
    classes only (plus Secondary Capture): an instance of another class fails its
    sub-operation, and the caller then lists the instances and asks again. Else
    those of :func:`storage_contexts` with no classes known (every storage class).
    Far fewer contexts make the association request far cheaper to build and
    negotiate (~10 ms instead of ~150 ms with 127 contexts).
    """
    named = {m.upper() for m in modalities}
    if named and named <= MODALITY_CLASSES.keys():
        return storage_contexts(_image_classes([], sorted(named)))
    return storage_contexts(modalities=modalities)


def get_storage_contexts(
    listing: Sequence[InstanceRef] | None,
    modalities: Sequence[str] = (),
    lead: str | None = None,
) -> list[PresentationContext]:
    """Storage contexts for a C-GET of ``listing`` (see :mod:`dimse_contexts`)."""
    refs = listing or ()
    classes = list(dict.fromkeys(r.sop_class_uid for r in refs if r.sop_class_uid))
    named = [m for r in refs for m in _listed(r, _MODALITY)]
    return storage_contexts(
        classes[: MAX_CONTEXTS - 1],
        modalities=[*named, *modalities],
        stored=_stored(refs),
        lead=lead,
    )
