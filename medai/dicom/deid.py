"""De-identification of DICOM: PS3.15 Annex E Basic Application Level Confidentiality Profile.

Implements the **Basic Application Level Confidentiality Profile** with the **Retain Longitudinal Temporal
Information with Modified Dates Option** (DICOM PS3.15 Annex E, Table E.1-1, edition **2024b**:
https://dicom.nema.org/medical/dicom/2024b/output/chtml/part15/chapter_E.html#table_E.1-1).
The attribute action table is kept as data (:data:`PS315_TABLE_E1_1`, 620 rows: 617 single attributes and the
masked rows Curve Data ``(50xx,xxxx)``, Overlay Data ``(60xx,3000)`` and Overlay Comments ``(60xx,4000)``)
plus the profile's "private attributes: X" row, which is applied to every odd group.

How the action codes are applied (``D``, ``Z``, ``X``, ``K``, ``C``, ``U`` and the compound codes):

* ``X`` removes the attribute; ``Z`` makes it zero length (an empty sequence for SQ); ``D`` replaces it with a
  dummy value of the VR (``ANONYMIZED``, ``0``, ``19000101`` ...; a sequence with one empty item for SQ);
  ``U`` replaces a UID with a keyed-hash UID (the same input UID always gives the same output UID for a given
  site secret, so references across files, series and batches stay consistent); ``K`` keeps; ``C`` cleans.
* Compound codes are resolved without knowledge of the IOD attribute type, choosing the option that keeps a
  Type 2 attribute present: ``X/Z`` -> ``Z``, ``Z/D`` -> ``Z``, ``X/Z/D`` -> ``Z``, ``X/D`` -> ``X``,
  ``X/Z/U*`` -> keep the sequence and apply the profile inside it (its referenced UIDs are remapped with ``U``).
* **Modified dates option** (``C`` for temporal attributes): every DA, DT and TM value anywhere in the data set
  (in the table or not, at any sequence depth) is shifted by a per-patient offset of whole days plus a number of
  seconds, derived by HMAC-SHA256 of the patient's original Patient ID with the site secret. A date and its
  companion time in the same data set (``StudyDate``/``StudyTime``, ``ContentDate``/``ContentTime``, ...) are
  shifted together as one instant, so every interval between events of one patient is preserved exactly
  (lone times wrap around midnight). Patient's Birth Date and Birth Time are not temporal-event attributes and
  follow the basic profile (``Z`` and ``X``). Values that are not valid dates (Sunnybrook's ``20120000``,
  ``00000000``) are replaced by a dummy and reported with :attr:`DeidFlagCode.INVALID_DATE`.
* Patient ID becomes a keyed pseudonym (HMAC-SHA256 of the original with the site secret, 32 hex digits) and
  Patient's Name the same pseudonym, so de-identified studies of one patient still group together.
* Private attributes (odd groups) and group lengths are removed; an overlay group whose Overlay Data is removed
  is removed entirely; the 128-byte preamble is zeroed; File Meta AE titles and private information are removed.
* Patient Identity Removed = ``YES``, Longitudinal Temporal Information Modified = ``MODIFIED``,
  De-identification Method and De-identification Method Code Sequence (DCM 113100 Basic Application
  Confidentiality Profile, DCM 113107 Retain Longitudinal Temporal Information Modified Dates Option) are set.

Pixel data are **never altered**. Burned-in annotation is only *flagged*: :attr:`DeidFlagCode.BURNED_IN_ANNOTATION`
when Burned In Annotation is ``YES``, :attr:`DeidFlagCode.BURNED_IN_ANNOTATION_POSSIBLE` when it is absent on
ultrasound or secondary capture images (which commonly carry burned-in text). A flagged image may still show
names or dates in its pixels and must be reviewed (or cleaned with the Clean Pixel Data option) before release.

The site secret comes from ``MEDAI_DEID_SECRET`` or a key file created on first use under ``MEDAI_HOME``; it is
never written into outputs. The re-identification mapping (original -> pseudonym, original -> new UID, date
offsets) is written only where the caller asks, and never inside the output folder.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import hmac
import io
import json
import logging
import os
import secrets
import shutil
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pydicom
from pydantic import BaseModel, Field
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medai import __version__
from medai.errors import ConfigError, IngestError

logger = logging.getLogger(__name__)

#: Edition of DICOM PS3.15 whose Table E.1-1 :data:`PS315_TABLE_E1_1` transcribes.
PS315_EDITION = "2024b"

#: DICOM PS3.15 Table E.1-1 "Application Level Confidentiality Profile Attributes", column "Basic Prof."
#: One row per attribute: ``GGGG,EEEE  ACTION  Attribute Name``; ``xx`` marks a repeating-group mask.
PS315_TABLE_E1_1 = """\
0018,11BB  D       Acquisition Field Of View Label
006A,0005  D       Annotation Group Label
006A,0003  D       Annotation Group UID
0044,0104  D       Assertion DateTime
0400,0562  D       Attribute Modification DateTime
300C,0127  D       Beam Hold Transition DateTime
0400,0115  D       Certificate of Signer
0012,0081  D       Clinical Trial Protocol Ethics Committee Name
0012,0020  D       Clinical Trial Protocol ID
0012,0010  D       Clinical Trial Sponsor Name
0012,0040  D       Clinical Trial Subject ID
0012,0042  D       Clinical Trial Subject Reading ID
0040,0512  D       Container Identifier
0040,A730  D       Content Sequence
0008,0107  D       Context Group Local Version
0008,0106  D       Context Group Version
0040,A121  D       Date
0040,A120  D       DateTime
0018,9701  D       Decay Correction DateTime
2100,0140  D       Destination AE
3010,002D  D       Device Label
0400,0105  D       Digital Signature DateTime
0068,6226  D       Effective DateTime
0042,0011  D       Encapsulated Document
3010,0035  D       Entity Label
3010,0038  D       Entity Long Label
0018,9804  D       Exclusion Start DateTime
0034,0002  D       Flow Identifier
0034,0001  D       Flow Identifier Sequence
0018,9074  D       Frame Acquisition DateTime
0034,0007  D       Frame Origin Timestamp
0018,9151  D       Frame Reference DateTime
0018,9623  D       Functional Sync Pulse
0070,0001  D       Graphic Annotation Sequence
0072,000A  D       Hanging Protocol Creation DateTime
003A,0314  D       Impedance Measurement DateTime
0068,6270  D       Information Issue DateTime
300A,0741  D       Interlock DateTime
300A,0742  D       Interlock Description
300A,0783  D       Interlock Origin Description
0400,0563  D       Modifying System
300A,0760  D       Override DateTime
0040,1101  D       Person Identification Code Sequence
0040,A123  D       Person Name
300A,0002  D       RT Plan Label
3010,0054  D       RT Prescription Label
300A,062A  D       RT Tolerance Set Label
300A,0619  D       Radiation Dose Identification Label
300A,0623  D       Radiation Dose In-Vivo Measurement Label
300A,067C  D       Radiation Generation Mode Label
0400,0565  D       Reason for the Attribute Modification
300A,073A  D       Recorded RT Control Point DateTime
0040,A13A  D       Referenced DateTime
3008,0162  D       Safe Position Exit Date
3008,0164  D       Safe Position Exit Time
3008,0166  D       Safe Position Return Date
3008,0168  D       Safe Position Return Time
0072,005E  D       Selector AE Value
0072,005F  D       Selector AS Value
0072,0061  D       Selector DA Value
0072,0063  D       Selector DT Value
0072,0066  D       Selector LO Value
0072,0068  D       Selector LT Value
0072,0065  D       Selector OB Value
0072,006A  D       Selector PN Value
0072,006C  D       Selector SH Value
0072,006E  D       Selector ST Value
0072,006B  D       Selector TM Value
0072,006D  D       Selector UN Value
0072,0071  D       Selector UR Value
0072,0070  D       Selector UT Value
0018,936A  D       Source End DateTime
0034,0005  D       Source Identifier
0018,9369  D       Source Start DateTime
300A,022C  D       Source Strength Reference Date
300A,022E  D       Source Strength Reference Time
0040,0551  D       Specimen Identifier
3006,0002  D       Structure Set Label
0040,A122  D       Time
3008,0024  D       Treatment Control Point Date
3008,0025  D       Treatment Control Point Time
300A,0608  D       Treatment Position Group Label
300A,0736  D       Treatment Tolerance Violation DateTime
300A,0734  D       Treatment Tolerance Violation Description
3010,0033  D       User Content Label
3010,0034  D       User Content Long Label
0040,A030  D       Verification DateTime
0040,A075  D       Verifying Observer Name
0040,A073  D       Verifying Observer Sequence
0040,A027  D       Verifying Organization
0018,9371  D       X-Ray Detector ID
0018,9367  D       X-Ray Source ID
0008,0050  Z       Accession Number
0018,1203  Z       Calibration DateTime
0012,0060  Z       Clinical Trial Coordinating Center Name
0012,0021  Z       Clinical Trial Protocol Name
0012,0030  Z       Clinical Trial Site ID
0012,0031  Z       Clinical Trial Site Name
0012,0050  Z       Clinical Trial Time Point ID
3010,000F  Z       Conceptual Volume Combination Description
3010,0017  Z       Conceptual Volume Description
0008,009C  Z       Consulting Physician's Name
3010,001B  Z       Device Alternate Identifier
0040,2017  Z       Filler Order Number / Imaging Service Request
3010,007F  Z       Fractionation Notes
0040,0513  Z       Issuer of the Container Identifier Sequence
0040,0562  Z       Issuer of the Specimen Identifier Sequence
3010,0043  Z       Manufacturer's Device Identifier
0040,A082  Z       Participation DateTime
0010,0030  Z       Patient's Birth Date
0010,0010  Z       Patient's Name
0010,0040  Z       Patient's Sex
0040,2016  Z       Placer Order Number / Imaging Service Request
3010,007B  Z       Prescription Notes
3010,0081  Z       Prescription Notes Sequence
3006,00A6  Z       ROI Interpreter
3006,0026  Z       ROI Name
300A,0615  Z       RT Accessory Device Slot ID
300A,0611  Z       RT Accessory Holder Slot ID
3010,005A  Z       RT Physician Intent Narrative
300A,067D  Z       Radiation Generation Mode Description
3010,005C  Z       Reason for Superseding
0008,0090  Z       Referring Physician's Name
300E,0004  Z       Review Date
300E,0005  Z       Review Time
0400,0564  Z       Source of Previous Values
0040,0610  Z       Specimen Preparation Sequence
3006,0008  Z       Structure Set Date
3006,0009  Z       Structure Set Time
0008,0020  Z       Study Date
0020,0010  Z       Study ID
0008,0030  Z       Study Time
3010,007A  Z       Treatment Technique Notes
0040,A088  Z       Verifying Observer Identification Code Sequence
0018,4000  X       Acquisition Comments
0018,9424  X       Acquisition Protocol Description
0040,4035  X       Actual Human Performers Sequence
0010,21B0  X       Additional Patient History
0040,A353  X       Address (Trial)
0038,0010  X       Admission ID
0038,0020  X       Admitting Date
0008,1084  X       Admitting Diagnoses Code Sequence
0008,1080  X       Admitting Diagnoses Description
0038,0021  X       Admitting Time
0000,1000  X       Affected SOP Instance UID
0010,2110  X       Allergies
006A,0006  X       Annotation Group Description
0044,0004  X       Approval Status DateTime
4000,0010  X       Arbitrary
0044,0105  X       Assertion Expiration DateTime
0040,A078  X       Author Observer Sequence
300A,00C3  X       Beam Description
300A,00DD  X       Bolus Description
0010,1081  X       Branch of Service
0014,407E  X       Calibration Date
0014,407C  X       Calibration Time
0016,004D  X       Camera Owner Name
0018,1007  X       Cassette ID
0400,0310  X       Certified Timestamp
0012,0082  X       Clinical Trial Protocol Ethics Committee Approval Number
0012,0072  X       Clinical Trial Series Description
0012,0071  X       Clinical Trial Series ID
0012,0051  X       Clinical Trial Time Point Description
0040,0310  X       Comments on Radiation Dose
0040,0280  X       Comments on the Performed Procedure Step
300A,02EB  X       Compensator Description
0040,3001  X       Confidentiality Constraint on Patient Data Description
0008,009D  X       Consulting Physician Identification Sequence
0050,001B  X       Container Component ID
0040,051A  X       Container Description
0070,0086  X       Content Creator's Identification Code Sequence
0018,1042  X       Contrast/Bolus Start Time
0018,1043  X       Contrast/Bolus Stop Time
0018,A002  X       Contribution DateTime
0018,A003  X       Contribution Description
0010,2150  X       Country of Residence
2100,0040  X       Creation Date
2100,0050  X       Creation Time
0040,A307  X       Current Observer (Trial)
0038,0300  X       Current Patient Location
50xx,xxxx  X       Curve Data
0008,0025  X       Curve Date
0008,0035  X       Curve Time
0040,A07C  X       Custodial Organization Sequence
FFFC,FFFC  X       Data Set Trailing Padding
0040,A110  X       Date of Document or Verbal Transaction (Trial)
0018,1205  X       Date of Installation
0018,1200  X       Date of Last Calibration
0018,1204  X       Date of Manufacture
0018,1012  X       Date of Secondary Capture
0018,1202  X       DateTime of Last Calibration
0018,937F  X       Decomposition Description
0008,2111  X       Derivation Description
0050,0020  X       Device Description
0016,004B  X       Device Setting Description
FFFA,FFFA  X       Digital Signatures Sequence
0038,0030  X       Discharge Date
0038,0040  X       Discharge Diagnosis Description
0038,0032  X       Discharge Time
300A,079A  X       Displacement Reference Label
4008,011A  X       Distribution Address
4008,0119  X       Distribution Name
300A,0016  X       Dose Reference Description
3010,0037  X       Entity Description
3010,0036  X       Entity Name
300A,0676  X       Equipment Frame of Reference Description
0012,0087  X       Ethics Committee Approval Effectiveness End Date
0012,0086  X       Ethics Committee Approval Effectiveness Start Date
0010,2160  X       Ethnic Group
0040,4011  X       Expected Completion DateTime
003A,032B  X       Filter Lookup Table Description
0040,A023  X       Findings Group Recording Date (Trial)
0040,A024  X       Findings Group Recording Time (Trial)
300A,0196  X       Fixation Device Description
300A,0072  X       Fraction Group Description
0020,9158  X       Frame Comments
0016,0076  X       GPS Altitude
0016,0075  X       GPS Altitude Ref
0016,008C  X       GPS Area Information
0016,007B  X       GPS DOP
0016,008D  X       GPS Date Stamp
0016,0088  X       GPS Dest Bearing
0016,0087  X       GPS Dest Bearing Ref
0016,008A  X       GPS Dest Distance
0016,0089  X       GPS Dest Distance Ref
0016,0084  X       GPS Dest Latitude
0016,0083  X       GPS Dest Latitude Ref
0016,0086  X       GPS Dest Longitude
0016,0085  X       GPS Dest Longitude Ref
0016,008E  X       GPS Differential
0016,0081  X       GPS Img Direction
0016,0080  X       GPS Img Direction Ref
0016,0072  X       GPS Latitude
0016,0071  X       GPS Latitude Ref
0016,0074  X       GPS Longitude
0016,0073  X       GPS Longitude Ref
0016,0082  X       GPS Map Datum
0016,007A  X       GPS Measure Mode
0016,008B  X       GPS Processing Method
0016,0078  X       GPS Satellites
0016,007D  X       GPS Speed
0016,007C  X       GPS Speed Ref
0016,0079  X       GPS Status
0016,0077  X       GPS Time Stamp
0016,007F  X       GPS Track
0016,007E  X       GPS Track Ref
0016,0070  X       GPS Version ID
0018,1008  X       Gantry ID
0018,1005  X       Generator ID
0040,E004  X       HL7 Document Effective Time
0040,4037  X       Human Performer's Name
0040,4036  X       Human Performer's Organization
0088,0200  X       Icon Image Sequence
0008,4000  X       Identifying Comments
0020,4000  X       Image Comments
0028,4000  X       Image Presentation Comments
0040,2400  X       Imaging Service Request Comments
4008,0300  X       Impressions
0008,0015  X       Instance Coercion DateTime
0400,0600  X       Instance Origin Status
0008,0081  X       Institution Address
0008,1040  X       Institutional Department Name
0008,1041  X       Institutional Department Type Code Sequence
0010,1050  X       Insurance Plan Identification
3010,0085  X       Intended Fraction Start Time
0040,1011  X       Intended Recipients of Results Identification Sequence
4008,0112  X       Interpretation Approval Date
4008,0113  X       Interpretation Approval Time
4008,0111  X       Interpretation Approver Sequence
4008,010C  X       Interpretation Author
4008,0115  X       Interpretation Diagnosis Description
4008,0200  X       Interpretation ID
4008,0202  X       Interpretation ID Issuer
4008,0100  X       Interpretation Recorded Date
4008,0101  X       Interpretation Recorded Time
4008,0102  X       Interpretation Recorder
4008,010B  X       Interpretation Text
4008,010A  X       Interpretation Transcriber
4008,0108  X       Interpretation Transcription Date
4008,0109  X       Interpretation Transcription Time
0018,0035  X       Intervention Drug Start Time
0018,0027  X       Intervention Drug Stop Time
0040,2004  X       Issue Date of Imaging Service Request
0040,2005  X       Issue Time of Imaging Service Request
0038,0011  X       Issuer of Admission ID
0038,0014  X       Issuer of Admission ID Sequence
0012,0022  X       Issuer of Clinical Trial Protocol ID
0012,0073  X       Issuer of Clinical Trial Series ID
0012,0032  X       Issuer of Clinical Trial Site ID
0012,0041  X       Issuer of Clinical Trial Subject ID
0012,0043  X       Issuer of Clinical Trial Subject Reading ID
0012,0055  X       Issuer of Clinical Trial Time Point ID
0010,0021  X       Issuer of Patient ID
0038,0061  X       Issuer of Service Episode ID
0038,0064  X       Issuer of Service Episode ID Sequence
0010,21D0  X       Last Menstrual Date
0016,004F  X       Lens Make
0016,0050  X       Lens Model
0016,0051  X       Lens Serial Number
0016,004E  X       Lens Specification
0050,0021  X       Long Device Description
0400,0404  X       MAC
0016,002B  X       Maker Note
0010,2000  X       Medical Alerts
0010,1090  X       Medical Record Locator
0010,1080  X       Military Rank
0400,0550  X       Modified Attributes Sequence
0020,3403  X       Modified Image Date
0020,3406  X       Modified Image Description
0020,3405  X       Modified Image Time
0020,3401  X       Modifying Device ID
0018,937B  X       Multi-energy Acquisition Description
0008,1060  X       Name of Physician(s) Reading Study
0040,1010  X       Names of Intended Recipients of Results
0008,1000  X       Network ID
0400,0552  X       Nonconforming Data Element Value
0400,0551  X       Nonconforming Modified Attributes Sequence
0040,A192  X       Observation Date (Trial)
0040,A033  X       Observation Start DateTime
0040,A193  X       Observation Time (Trial)
0010,2180  X       Occupation
0040,2010  X       Order Callback Phone Number
0040,2011  X       Order Callback Telecom Information
0040,2008  X       Order Entered By
0040,2009  X       Order Enterer's Location
0400,0561  X       Original Attributes Sequence
2100,0070  X       Originator
0012,0023  X       Other Clinical Trial Protocol IDs Sequence
0010,1000  X       Other Patient IDs
0010,1002  X       Other Patient IDs Sequence
0010,1001  X       Other Patient Names
60xx,4000  X       Overlay Comments
60xx,3000  X       Overlay Data
0008,0024  X       Overlay Date
0008,0034  X       Overlay Time
0040,A07A  X       Participant Sequence
0010,4000  X       Patient Comments
300A,0794  X       Patient Setup Photo Description
0038,0500  X       Patient State
0040,1004  X       Patient Transport Arrangements
300A,0792  X       Patient Treatment Preparation Method Description
300A,078E  X       Patient Treatment Preparation Procedure Parameter Description
0010,1040  X       Patient's Address
0010,1010  X       Patient's Age
0010,1005  X       Patient's Birth Name
0010,0032  X       Patient's Birth Time
0038,0400  X       Patient's Institution Residence
0010,0050  X       Patient's Insurance Plan Code Sequence
0010,1060  X       Patient's Mother's Birth Name
0010,0101  X       Patient's Primary Language Code Sequence
0010,0102  X       Patient's Primary Language Modifier Code Sequence
0010,21F0  X       Patient's Religious Preference
0010,1020  X       Patient's Size
0010,2155  X       Patient's Telecom Information
0010,2154  X       Patient's Telephone Numbers
0010,1030  X       Patient's Weight
0040,0243  X       Performed Location
0040,0254  X       Performed Procedure Step Description
0040,0250  X       Performed Procedure Step End Date
0040,4051  X       Performed Procedure Step End DateTime
0040,0251  X       Performed Procedure Step End Time
0040,0253  X       Performed Procedure Step ID
0040,0244  X       Performed Procedure Step Start Date
0040,4050  X       Performed Procedure Step Start DateTime
0040,0245  X       Performed Procedure Step Start Time
0040,0241  X       Performed Station AE Title
0040,4030  X       Performed Station Geographic Location Code Sequence
0040,0242  X       Performed Station Name
0040,4028  X       Performed Station Name Code Sequence
0008,1052  X       Performing Physician Identification Sequence
0008,1050  X       Performing Physician's Name
0040,1102  X       Person's Address
0040,1104  X       Person's Telecom Information
0040,1103  X       Person's Telephone Numbers
4008,0114  X       Physician Approving Interpretation
0008,1062  X       Physician(s) Reading Study Identification Sequence
0008,1048  X       Physician(s) of Record
0008,1049  X       Physician(s) of Record Identification Sequence
0018,1004  X       Plate ID
3002,0123  X       Position Acquisition Template Description
3002,0121  X       Position Acquisition Template Name
0040,0012  X       Pre-Medication
0010,21C0  X       Pregnancy Status
300A,000E  X       Prescription Description
0070,0082  X       Presentation Creation Date
0070,0083  X       Presentation Creation Time
3010,0061  X       Prior Treatment Dose Description
0040,4052  X       Procedure Step Cancellation DateTime
0044,000B  X       Product Expiration DateTime
0008,1088  X       Pyramid Description
0020,0027  X       Pyramid Label
3006,004D  X       ROI Creator Sequence
3006,002D  X       ROI DateTime
3006,0028  X       ROI Description
3006,0038  X       ROI Generation Description
3006,004E  X       ROI Interpreter Sequence
3006,002E  X       ROI Observation DateTime
3006,0088  X       ROI Observation Description
3006,0085  X       ROI Observation Label
300A,0004  X       RT Plan Description
300A,0003  X       RT Plan Name
0018,1078  X       Radiopharmaceutical Start DateTime
0018,1072  X       Radiopharmaceutical Start Time
0018,1079  X       Radiopharmaceutical Stop DateTime
0018,1073  X       Radiopharmaceutical Stop Time
300C,0113  X       Reason for Omission Description
0040,100A  X       Reason for Requested Procedure Code Sequence
0032,1030  X       Reason for Study
0032,1066  X       Reason for Visit
0032,1067  X       Reason for Visit Code Sequence
0040,2001  X       Reason for the Imaging Service Request
0040,1002  X       Reason for the Requested Procedure
0074,1234  X       Receiving AE
0400,0402  X       Referenced Digital Signature Sequence
0038,0004  X       Referenced Patient Alias Sequence
0010,1100  X       Referenced Patient Photo Sequence
0008,1120  X       Referenced Patient Sequence
0400,0403  X       Referenced SOP Instance MAC Sequence
0008,0096  X       Referring Physician Identification Sequence
0008,0092  X       Referring Physician's Address
0008,0094  X       Referring Physician's Telephone Numbers
0010,2152  X       Region of Residence
0040,0275  X       Request Attributes Sequence
0032,1070  X       Requested Contrast Agent
0040,1400  X       Requested Procedure Comments
0040,1001  X       Requested Procedure ID
0040,1005  X       Requested Procedure Location
0018,9937  X       Requested Series Description
0074,1236  X       Requesting AE
0032,1032  X       Requesting Physician
0032,1033  X       Requesting Service
0018,9185  X       Respiratory Motion Compensation Technique Description
0010,2299  X       Responsible Organization
0010,2297  X       Responsible Person
4008,4000  X       Results Comments
4008,0118  X       Results Distribution List Sequence
4008,0040  X       Results ID
4008,0042  X       Results ID Issuer
0008,0054  X       Retrieve AE Title
0100,0420  X       SOP Authorization DateTime
0038,001A  X       Scheduled Admission Date
0038,001B  X       Scheduled Admission Time
0038,001C  X       Scheduled Discharge Date
0038,001D  X       Scheduled Discharge Time
0040,4034  X       Scheduled Human Performers Sequence
0038,001E  X       Scheduled Patient Institution Residence
0040,000B  X       Scheduled Performing Physician Identification Sequence
0040,0006  X       Scheduled Performing Physician's Name
0040,0007  X       Scheduled Procedure Step Description
0040,0004  X       Scheduled Procedure Step End Date
0040,0005  X       Scheduled Procedure Step End Time
0040,4008  X       Scheduled Procedure Step Expiration DateTime
0040,0009  X       Scheduled Procedure Step ID
0040,0011  X       Scheduled Procedure Step Location
0040,4010  X       Scheduled Procedure Step Modification DateTime
0040,0002  X       Scheduled Procedure Step Start Date
0040,4005  X       Scheduled Procedure Step Start DateTime
0040,0003  X       Scheduled Procedure Step Start Time
0040,0001  X       Scheduled Station AE Title
0040,4027  X       Scheduled Station Geographic Location Code Sequence
0040,0010  X       Scheduled Station Name
0040,4025  X       Scheduled Station Name Code Sequence
0032,1020  X       Scheduled Study Location
0032,1021  X       Scheduled Study Location AE Title
0032,1000  X       Scheduled Study Start Date
0032,1001  X       Scheduled Study Start Time
0032,1010  X       Scheduled Study Stop Date
0032,1011  X       Scheduled Study Stop Time
0008,103E  X       Series Description
0038,0062  X       Service Episode Description
0038,0060  X       Service Episode ID
300A,01B2  X       Setup Technique Description
300A,01A6  X       Shielding Device Description
0040,06FA  X       Slide Identifier
0010,21A0  X       Smoking Status
300A,0216  X       Source Manufacturer
0038,0050  X       Special Needs
0040,050A  X       Specimen Accession Number
0040,0602  X       Specimen Detailed Description
0040,0600  X       Specimen Short Description
0008,0055  X       Station AE Title
3006,0006  X       Structure Set Description
3006,0004  X       Structure Set Name
0032,1040  X       Study Arrival Date
0032,1041  X       Study Arrival Time
0032,4000  X       Study Comments
0032,1050  X       Study Completion Date
0032,1051  X       Study Completion Time
0008,1030  X       Study Description
0032,0012  X       Study ID Issuer
0032,0034  X       Study Read Date
0032,0035  X       Study Read Time
0032,0032  X       Study Verified Date
0032,0033  X       Study Verified Time
0044,0010  X       Substance Administration DateTime
0040,A354  X       Telephone Number (Trial)
0040,DB07  X       Template Local Version
0040,DB06  X       Template Version
4000,4000  X       Text Comments
2030,0020  X       Text String
0040,A112  X       Time of Document Creation or Verbal Transaction (Trial)
0018,1201  X       Time of Last Calibration
0018,1014  X       Time of Secondary Capture
0008,0201  X       Timezone Offset From UTC
0088,0910  X       Topic Author
0088,0912  X       Topic Keywords
0088,0906  X       Topic Subject
0088,0904  X       Topic Title
0018,5011  X       Transducer Identification Sequence
300A,000B  X       Treatment Sites
0018,100A  X       UDI Sequence
0018,1009  X       Unique Device Identifier
0040,A352  X       Verbal Source (Trial)
0040,A358  X       Verbal Source Identifier Code Sequence (Trial)
0038,4000  X       Visit Comments
0018,9373  X       X-Ray Detector Label
003A,0329  X       Waveform Filter Description
0008,0017  U       Acquisition UID
0020,9161  U       Concatenation UID
3010,0006  U       Conceptual Volume UID
3010,0013  U       Constituent Conceptual Volume UID
0018,1002  U       Device UID
0400,0100  U       Digital Signature UID
0020,9164  U       Dimension Organization UID
300A,0013  U       Dose Reference UID
3010,006E  U       Dosimetric Objective UID
0008,0058  U       Failed SOP Instance UID List
0070,031A  U       Fiducial UID
0020,0052  U       Frame of Reference UID
0008,0014  U       Instance Creator UID
0008,3010  U       Irradiation Event UID
0028,1214  U       Large Palette Color Lookup Table UID
0018,100B  U       Manufacturer's Device Class UID
0002,0003  U       Media Storage SOP Instance UID
003A,0310  U       Multiplex Group UID
0040,A402  U       Observation Subject UID (Trial)
0040,A171  U       Observation UID
0028,1199  U       Palette Color Lookup Table UID
300A,0650  U       Patient Setup UID
0070,1101  U       Presentation Display Collection UID
0070,1102  U       Presentation Sequence Collection UID
0008,0019  U       Pyramid UID
3010,003B  U       RT Treatment Phase UID
3010,000B  U       Referenced Conceptual Volume UID
300A,0083  U       Referenced Dose Reference UID
3010,006F  U       Referenced Dosimetric Objective UID
3010,0031  U       Referenced Fiducials UID
3006,0024  U       Referenced Frame of Reference UID
0040,4023  U       Referenced General Purpose Scheduled Procedure Step Transaction UID
0040,A172  U       Referenced Observation UID (Trial)
0008,1155  U       Referenced SOP Instance UID
0004,1511  U       Referenced SOP Instance UID in File
300A,0785  U       Referenced Treatment Position Group UID
3006,00C2  U       Related Frame of Reference UID
0000,1001  U       Requested SOP Instance UID
0008,0018  U       SOP Instance UID
0020,000E  U       Series Instance UID
3010,0015  U       Source Conceptual Volume UID
0064,0003  U       Source Frame of Reference UID
0040,0554  U       Specimen UID
0088,0140  U       Storage Media File-set UID
0020,000D  U       Study Instance UID
0020,0200  U       Synchronization Frame of Reference UID
0018,2042  U       Target UID
0040,DB0D  U       Template Extension Creator UID
0040,DB0C  U       Template Extension Organization UID
0062,0021  U       Tracking UID
0008,1195  U       Transaction UID
300A,0609  U       Treatment Position Group UID
300A,0700  U       Treatment Session UID
0040,A124  U       UID
0070,0084  Z/D     Content Creator's Name
0008,0023  Z/D     Content Date
0008,0033  Z/D     Content Time
0018,0010  Z/D     Contrast/Bolus Agent
0018,9919  Z/D     Instruction Performed DateTime
0010,0020  Z/D     Patient ID
0040,0555  X/Z     Acquisition Context Sequence
0008,0022  X/Z     Acquisition Date
0008,0032  X/Z     Acquisition Time
2200,0005  X/Z     Barcode Value
2200,0002  X/Z     Label Text
0010,2203  X/Z     Patient's Sex Neutered
0008,1110  X/Z     Referenced Study Sequence
0032,1060  X/Z     Requested Procedure Description
300E,0008  X/Z     Reviewer Name
3008,0105  X/Z     Source Serial Number
300A,00B2  X/Z     Treatment Machine Name
0018,1400  X/D     Acquisition Device Processing Description
0018,700C  X/D     Date of Last Detector Calibration
0018,700A  X/D     Detector ID
0018,9517  X/D     End Acquisition DateTime
3008,0054  X/D     First Treatment Date
0008,0012  X/D     Instance Creation Date
3010,004D  X/D     Intended Phase End Date
3010,004C  X/D     Intended Phase Start Date
3008,0056  X/D     Most Recent Treatment Date
0040,A032  X/D     Observation DateTime
0008,1072  X/D     Operator Identification Sequence
0018,1030  X/D     Protocol Name
300A,0006  X/D     RT Plan Date
300A,0007  X/D     RT Plan Time
3010,0056  X/D     RT Treatment Approach Label
0008,0021  X/D     Series Date
0008,0031  X/D     Series Time
0018,9516  X/D     Start Acquisition DateTime
0018,700E  X/D     Time of Last Detector Calibration
3008,0250  X/D     Treatment Date
3010,0077  X/D     Treatment Site
3008,0251  X/D     Treatment Time
0008,002A  X/Z/D   Acquisition DateTime
0018,1000  X/Z/D   Device Serial Number
0008,0013  X/Z/D   Instance Creation Time
0008,0082  X/Z/D   Institution Code Sequence
0008,0080  X/Z/D   Institution Name
0008,1070  X/Z/D   Operators' Name
0008,1111  X/Z/D   Referenced Performed Procedure Step Sequence
0008,1010  X/Z/D   Station Name
0008,1140  X/Z/U*  Referenced Image Sequence
0008,2112  X/Z/U*  Source Image Sequence
"""


class ProfileAction(StrEnum):
    """Action codes of PS3.15 Table E.1-1."""

    D = "D"
    Z = "Z"
    X = "X"
    K = "K"
    C = "C"
    U = "U"
    Z_D = "Z/D"
    X_Z = "X/Z"
    X_D = "X/D"
    X_Z_D = "X/Z/D"
    X_Z_U_STAR = "X/Z/U*"


@dataclass(frozen=True)
class ProfileRule:
    """One row of Table E.1-1.

    Attributes:
        tag: ``"(GGGG,EEEE)"``, with ``xx`` for the masked repeating-group rows.
        action: Basic-profile action code.
        name: Attribute name as printed in the standard.
    """

    tag: str
    action: ProfileAction
    name: str

    @property
    def mask(self) -> tuple[int, int]:
        """``(mask, value)`` such that a tag ``t`` matches when ``t & mask == value``."""
        hex_digits = self.tag.strip("()").replace(",", "")
        mask = int("".join("0" if c == "x" else "F" for c in hex_digits), 16)
        value = int(hex_digits.replace("x", "0"), 16)
        return mask, value

    @property
    def is_masked(self) -> bool:
        """True for the repeating-group rows (Curve Data, Overlay Data, Overlay Comments)."""
        return "x" in self.tag

    @property
    def keyword(self) -> str:
        """The DICOM keyword (empty for masked rows)."""
        return "" if self.is_masked else keyword_for_tag(self.mask[1])


def _parse_table(text: str) -> tuple[ProfileRule, ...]:
    rules = []
    for line in text.strip().splitlines():
        tag, action, name = line.split(None, 2)
        rules.append(ProfileRule(tag=f"({tag})", action=ProfileAction(action), name=name.strip()))
    return tuple(rules)


#: The parsed basic profile, in the order of :data:`PS315_TABLE_E1_1`.
BASIC_PROFILE: tuple[ProfileRule, ...] = _parse_table(PS315_TABLE_E1_1)
_EXACT_RULES: dict[int, ProfileRule] = {r.mask[1]: r for r in BASIC_PROFILE if not r.is_masked}
_MASKED_RULES: tuple[tuple[int, int, ProfileRule], ...] = tuple((*r.mask, r) for r in BASIC_PROFILE if r.is_masked)


def profile_rule(tag: int) -> ProfileRule | None:
    """The Table E.1-1 row for ``tag`` (None when the attribute is not in the basic profile)."""
    rule = _EXACT_RULES.get(int(tag))
    if rule is not None:
        return rule
    for mask, value, masked in _MASKED_RULES:
        if int(tag) & mask == value:
            return masked
    return None


_DATE_VRS = frozenset({"DA", "DT", "TM"})
#: Temporal attributes that describe the patient, not an event: they follow the basic profile, never shifted.
_NOT_SHIFTED = frozenset({0x00100030, 0x00100032})  # Patient's Birth Date, Patient's Birth Time
_PATIENT_ID = 0x00100020
_PATIENT_NAME = 0x00100010
_OVERLAY_GROUPS = range(0x6000, 0x6020, 2)
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_DA = "19000101"
_DUMMY_TM = "000000"
_DUMMY_DT = "19000101000000"
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UT", "UC", "PN"})
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"})
_BYTES_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
#: SOP classes of secondary capture images (burned-in text is common there).
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


class DeidFlagCode(StrEnum):
    """What a de-identification flag reports."""

    BURNED_IN_ANNOTATION = "burned-in-annotation"
    """Burned In Annotation is YES: identifying text may be in the pixels (not altered)."""
    BURNED_IN_ANNOTATION_POSSIBLE = "burned-in-annotation-possible"
    """Burned In Annotation is absent on an ultrasound or secondary-capture image: pixels need review."""
    INVALID_DATE = "invalid-date-replaced"
    """A DA/DT/TM value could not be parsed, so it could not be shifted and was replaced with a dummy."""
    PATIENT_ID_MISSING = "patient-id-missing"
    """No Patient ID: the pseudonym and date offset were derived from Patient's Name and Birth Date."""


class DeidFlag(BaseModel):
    """A finding of de-identification that a person may need to act on."""

    code: DeidFlagCode
    message: str
    keyword: str | None = None


@dataclass
class DeidResult:
    """Result of :meth:`Deidentifier.deidentify_dataset`.

    Attributes:
        dataset: The de-identified data set (pixel data untouched).
        flags: Findings (burned-in annotation, invalid dates replaced, missing Patient ID).
        patient_pseudonym: The keyed pseudonym now in Patient ID.
    """

    dataset: Dataset
    flags: list[DeidFlag] = field(default_factory=list)
    patient_pseudonym: str = ""

    @property
    def burned_in(self) -> bool:
        """True when the pixels may carry burned-in identifying text (see :class:`DeidFlagCode`)."""
        return any(
            f.code in (DeidFlagCode.BURNED_IN_ANNOTATION, DeidFlagCode.BURNED_IN_ANNOTATION_POSSIBLE)
            for f in self.flags
        )


@dataclass
class _Context:
    offset: timedelta
    pseudonym: str
    flags: list[DeidFlag]


class Deidentifier:
    """Applies the basic profile with modified dates, with keyed, consistent pseudonyms and UIDs.

    One instance keeps the UID and patient maps of a batch; the same secret always yields the same outputs,
    so separate batches of one site stay consistent too.

    Args:
        secret: Site secret (at least 16 bytes). Never written anywhere by this class.
        retain_patient_characteristics: also apply the **Retain Patient Characteristics Option** (PS3.15 E.3.10):
            keep Patient's Sex, Age, Size, Weight, Sex Neutered, Pregnancy and Smoking Status and Ethnic Group
            (the option's ``K`` rows; its ``C`` rows, free text, stay removed). Analyses need sex, age, height and
            weight for sex-specific reference ranges and BSA-indexed values. DCM 113108 is recorded.
    """

    def __init__(self, secret: bytes, *, retain_patient_characteristics: bool = False) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
            raise ConfigError(
                "the de-identification secret must be at least 16 bytes; set MEDAI_DEID_SECRET to a long random "
                "string or let medai create a key file under MEDAI_HOME"
            )
        self._secret = bytes(secret)
        self.retain_patient_characteristics = retain_patient_characteristics
        self.uid_map: dict[str, str] = {}
        self.patient_map: dict[str, str] = {}
        self.date_offsets: dict[str, timedelta] = {}

    # -- keyed derivations -------------------------------------------------------------------------------
    def _digest(self, domain: str, value: str) -> bytes:
        return hmac.new(
            self._secret, domain.encode() + b"\x00" + value.encode("utf-8", "replace"), hashlib.sha256
        ).digest()

    def pseudonym(self, patient_key: str) -> str:
        """Keyed pseudonym of a patient: the first 32 hex digits of HMAC-SHA256(secret, key)."""
        pseudo = self.patient_map.get(patient_key)
        if pseudo is None:
            pseudo = self._digest("patient-id", patient_key).hex()[:32]
            self.patient_map[patient_key] = pseudo
        return pseudo

    def date_offset(self, patient_key: str) -> timedelta:
        """Per-patient shift: between 365 and 3650 days back, plus 1 to 86399 seconds (so times change too)."""
        offset = self.date_offsets.get(patient_key)
        if offset is None:
            n = int.from_bytes(self._digest("date-offset", patient_key)[:16], "big")
            offset = timedelta(days=-(365 + n % 3286), seconds=1 + (n >> 64) % 86399)
            self.date_offsets[patient_key] = offset
        return offset

    def remap_uid(self, uid: str) -> str:
        """Replacement of ``uid``: ``2.25.<n>`` with ``n`` a version-8 UUID built from HMAC-SHA256(secret, uid)."""
        uid = str(uid).strip().rstrip("\x00")
        if not uid:
            return uid
        new = self.uid_map.get(uid)
        if new is None:
            n = int.from_bytes(self._digest("uid", uid)[:16], "big")
            n = (n & ~(0xF << 76)) | (0x8 << 76)  # UUID version 8 (custom)
            n = (n & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
            new = f"2.25.{uuid.UUID(int=n).int}"
            self.uid_map[uid] = new
        return new

    # -- data set ----------------------------------------------------------------------------------------
    def deidentify_dataset(self, ds: Dataset, *, in_place: bool = False) -> DeidResult:
        """De-identify one data set.

        Args:
            ds: The data set (with or without file meta).
            in_place: Modify ``ds`` itself instead of a deep copy (saves memory on large multi-frame files).

        Returns:
            The de-identified data set, the flags raised, and the patient pseudonym.
        """
        if not in_place:
            ds = copy.deepcopy(ds)
        flags: list[DeidFlag] = []
        patient_id = str(ds.get("PatientID", "") or "").strip()
        if patient_id:
            patient_key = patient_id
        else:
            patient_key = f"name={ds.get('PatientName', '')}|birth={ds.get('PatientBirthDate', '')}"
            flags.append(
                DeidFlag(
                    code=DeidFlagCode.PATIENT_ID_MISSING,
                    message="no Patient ID: pseudonym and date offset derived from Patient's Name and Birth Date",
                    keyword="PatientID",
                )
            )
        flags.extend(_burned_in_flags(ds))
        ctx = _Context(offset=self.date_offset(patient_key), pseudonym=self.pseudonym(patient_key), flags=flags)
        self._process(ds, ctx)
        ds.PatientID = ctx.pseudonym  # Type 2: present even when the original lacked it
        ds.PatientName = ctx.pseudonym
        self._process_file_meta(ds)
        _add_deid_attributes(ds, self.retain_patient_characteristics)
        ds.preamble = b"\x00" * 128
        return DeidResult(dataset=ds, flags=flags, patient_pseudonym=ctx.pseudonym)

    def _process(self, ds: Dataset, ctx: _Context, depth: int = 0) -> None:
        temporal: list[int] = []
        dropped_overlays: set[int] = set()
        for tag in list(ds.keys()):
            tag = Tag(tag)
            if tag.group % 2 == 1 or tag.element == 0:  # private attribute (profile row "X") or group length
                del ds[tag]
                continue
            elem = ds[tag]
            if elem.VR in _DATE_VRS and int(tag) not in _NOT_SHIFTED:
                temporal.append(int(tag))  # modified dates option: "C" for every temporal attribute
                continue
            rule = profile_rule(tag)
            if depth == 0 and self.retain_patient_characteristics and int(tag) in PATIENT_CHARACTERISTICS:
                continue  # Retain Patient Characteristics Option: K
            if int(tag) in (_PATIENT_ID, _PATIENT_NAME):
                if depth == 0:
                    elem.value = ctx.pseudonym
                elif int(tag) == _PATIENT_ID and str(elem.value or "").strip():
                    elem.value = self.pseudonym(str(elem.value).strip())  # another patient's ID in an item
                else:
                    elem.value = ""
            elif rule is None:
                if elem.VR == "SQ":
                    for item in elem.value:
                        self._process(item, ctx, depth + 1)
            else:
                self._apply(ds, elem, rule.action, ctx, depth)
                if rule.is_masked and tag.group in _OVERLAY_GROUPS:
                    dropped_overlays.add(tag.group)
        for group in dropped_overlays:
            for tag in [t for t in ds.keys() if Tag(t).group == group]:
                del ds[tag]
        _shift_temporal(ds, temporal, ctx)

    def _apply(self, ds: Dataset, elem: Any, action: ProfileAction, ctx: _Context, depth: int) -> None:
        resolved = _resolve(action)
        vr = elem.VR
        if resolved is ProfileAction.X:
            del ds[elem.tag]
        elif resolved is ProfileAction.Z:
            if vr == "SQ":
                elem.value = Sequence([])
            else:
                elem.value = None if vr in _NUMBER_VRS | _BYTES_VRS | {"AT"} else ""
        elif resolved is ProfileAction.X_Z_U_STAR:
            if vr == "SQ":
                for item in elem.value:
                    self._process(item, ctx, depth + 1)
            elif vr == "UI":
                self._remap_element(elem)
            else:
                elem.value = ""
        elif resolved is ProfileAction.U:
            if vr == "UI":
                self._remap_element(elem)
            else:
                elem.value = _dummy(vr)
        elif resolved is ProfileAction.K:
            pass
        else:  # D (C never comes from the basic column; temporal C is handled by _shift_temporal)
            elem.value = _dummy(vr)

    def _remap_element(self, elem: Any) -> None:
        value = elem.value
        if value is None or value == "":
            return
        if isinstance(value, str):
            elem.value = self.remap_uid(value)
        else:
            elem.value = [self.remap_uid(v) for v in value]

    def _process_file_meta(self, ds: Dataset) -> None:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for tag in (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102):
            if tag in meta:
                del meta[tag]
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        elif "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = self.remap_uid(meta.MediaStorageSOPInstanceUID)


def _resolve(action: ProfileAction) -> ProfileAction:
    """Collapse compound codes (see the module docstring for the rationale)."""
    return {
        ProfileAction.X_Z: ProfileAction.Z,
        ProfileAction.Z_D: ProfileAction.Z,
        ProfileAction.X_Z_D: ProfileAction.Z,
        ProfileAction.X_D: ProfileAction.X,
    }.get(action, action)


def _dummy(vr: str) -> Any:
    """A dummy value of the VR for action ``D``."""
    if vr == "SQ":
        return Sequence([Dataset()])
    if vr in _TEXT_VRS:
        return _DUMMY_TEXT
    if vr == "UR":
        return "urn:anonymized"
    if vr == "AS":
        return "000Y"
    if vr == "DA":
        return _DUMMY_DA
    if vr == "TM":
        return _DUMMY_TM
    if vr == "DT":
        return _DUMMY_DT
    if vr in ("DS", "IS"):
        return "0"
    if vr in _NUMBER_VRS or vr == "AT":
        return 0
    if vr in _BYTES_VRS:
        return b"\x00" * 8
    return ""


def _burned_in_flags(ds: Dataset) -> list[DeidFlag]:
    value = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if value == "YES":
        return [
            DeidFlag(
                code=DeidFlagCode.BURNED_IN_ANNOTATION,
                message="Burned In Annotation is YES: pixels may show identifying text and were NOT altered",
                keyword="BurnedInAnnotation",
            )
        ]
    modality = str(ds.get("Modality", "") or "").upper()
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if not value and (modality in ("US", "SC") or sop_class.startswith(_SECONDARY_CAPTURE_PREFIX)):
        kind = "ultrasound" if modality == "US" else "secondary capture"
        return [
            DeidFlag(
                code=DeidFlagCode.BURNED_IN_ANNOTATION_POSSIBLE,
                message=f"{kind} image without Burned In Annotation: pixels may show identifying text and were "
                "NOT altered; review before release",
                keyword="BurnedInAnnotation",
            )
        ]
    return []


#: Retain Patient Characteristics Option (PS3.15 E.3.10), its ``K`` rows: Patient's Sex, Age, Size, Weight,
#: Sex Neutered, Smoking Status, Pregnancy Status, Ethnic Group.
PATIENT_CHARACTERISTICS = frozenset({0x00100040, 0x00101010, 0x00101020, 0x00101030, 0x00102203, 0x001021A0,
                                     0x001021C0, 0x00102160})


def _add_deid_attributes(ds: Dataset, retain_characteristics: bool = False) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = [
        f"DICOM PS3.15 {PS315_EDITION} E.1-1 Basic Profile",
        "Retain Longitudinal Modified Dates",
        *(["Retain Patient Characteristics"] if retain_characteristics else []),
        f"medai {__version__} keyed pseudonyms"[:64],
    ]
    items = []
    for value, meaning in (
        ("113100", "Basic Application Confidentiality Profile"),
        ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
        *([("113108", "Retain Patient Characteristics Option")] if retain_characteristics else []),
    ):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)


# -- temporal values ------------------------------------------------------------------------------------------
def _parse_da(text: str) -> date | None:
    text = text.strip().replace(".", "").replace("-", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _parse_tm(text: str) -> tuple[time, int] | None:
    """Parse a TM (also the legacy ``HH:MM:SS``); returns the time and the number of fraction digits."""
    text = text.strip().replace(":", "")
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6) or (frac and not frac.isdigit()):
        return None
    hh, mm, ss = int(whole[:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
    ss = min(ss, 59)  # leap second 60 is legal in DICOM
    try:
        return time(hh, mm, ss, int((frac + "000000")[:6]) if frac else 0), len(frac[:6])
    except ValueError:
        return None


def _format_tm(t: time, frac_digits: int) -> str:
    out = t.strftime("%H%M%S")
    if frac_digits:
        out += "." + f"{t.microsecond:06d}"[:frac_digits]
    return out


def _parse_dt(text: str) -> tuple[datetime, int, str] | None:
    """Parse a DT with at least a full date; returns the instant, fraction digits and the UTC-offset suffix."""
    text = text.strip()
    suffix = ""
    for sign in ("+", "-"):
        if sign in text[4:]:
            pos = text.rindex(sign)
            text, suffix = text[:pos], text[pos:]
            break
    d = _parse_da(text[:8])
    if d is None:
        return None
    rest = text[8:]
    if not rest:
        return datetime.combine(d, time()), -1, suffix
    parsed = _parse_tm(rest.ljust(2, "0") if len(rest) == 1 else rest)
    if parsed is None:
        return None
    return datetime.combine(d, parsed[0]), parsed[1], suffix


def _format_dt(value: datetime, frac_digits: int, suffix: str) -> str:
    if frac_digits < 0:
        return value.strftime("%Y%m%d") + suffix
    return value.strftime("%Y%m%d") + _format_tm(value.time(), frac_digits) + suffix


def _shift_temporal(ds: Dataset, tags: list[int], ctx: _Context) -> None:
    """Shift every DA/DT/TM in ``tags`` by the patient offset, date+time companions together."""
    done: set[int] = set()
    by_keyword = {keyword_for_tag(t): t for t in tags}
    for tag in tags:
        elem = ds[tag]
        if tag in done or elem.VR != "DA" or elem.VM != 1:
            continue
        keyword = keyword_for_tag(tag)
        partner = by_keyword.get(keyword.replace("Date", "Time", 1)) if "Date" in keyword else None
        if partner is None or ds[partner].VR != "TM" or ds[partner].VM != 1:
            continue
        d, t = _parse_da(str(elem.value)), _parse_tm(str(ds[partner].value))
        if d is None or t is None:
            continue
        try:
            shifted = datetime.combine(d, t[0]) + ctx.offset
        except OverflowError:
            continue
        elem.value = shifted.strftime("%Y%m%d")
        ds[partner].value = _format_tm(shifted.time(), t[1])
        done.update((tag, partner))
    for tag in tags:
        if tag in done:
            continue
        elem = ds[tag]
        raw = elem.value
        if raw is None or raw == "":
            continue
        values = [str(v) for v in raw] if not isinstance(raw, str | bytes) and hasattr(raw, "__iter__") else [str(raw)]
        out = []
        for text in values:
            new = _shift_one(elem.VR, text, ctx.offset)
            if new is None:
                new = {"DA": _DUMMY_DA, "TM": _DUMMY_TM}.get(elem.VR, _DUMMY_DT)
                ctx.flags.append(
                    DeidFlag(
                        code=DeidFlagCode.INVALID_DATE,
                        message=f"{keyword_for_tag(tag) or Tag(tag)} is not a valid {elem.VR}; replaced with a "
                        "dummy instead of being shifted",
                        keyword=keyword_for_tag(tag) or str(Tag(tag)),
                    )
                )
            out.append(new)
        elem.value = out[0] if len(out) == 1 else out


def _shift_one(vr: str, text: str, offset: timedelta) -> str | None:
    if not text.strip():
        return text
    try:
        if vr == "DA":
            d = _parse_da(text)
            return None if d is None else (d + timedelta(days=offset.days)).strftime("%Y%m%d")
        if vr == "TM":
            t = _parse_tm(text)
            if t is None:
                return None
            shifted = datetime.combine(date(2000, 1, 1), t[0]) + timedelta(seconds=offset.seconds)
            return _format_tm(shifted.time(), t[1])
        parsed = _parse_dt(text)
        if parsed is None:
            return None
        return _format_dt(parsed[0] + offset, parsed[1], parsed[2])
    except (OverflowError, ValueError):
        return None


# -- site secret ----------------------------------------------------------------------------------------------
SECRET_ENV = "MEDAI_DEID_SECRET"


def default_secret_path() -> Path:
    """Where the site key file lives: ``MEDAI_HOME/deid/site_secret.key``."""
    from medai.settings import get_settings

    return get_settings().home / "deid" / "site_secret.key"


def load_site_secret(secret_file: Path | None = None) -> bytes:
    """The site secret: ``secret_file`` if given, else ``MEDAI_DEID_SECRET``, else the key file under MEDAI_HOME.

    The key file is created on first use (64 random hex digits, mode 0600).

    Raises:
        ConfigError: ``secret_file`` is missing or empty.
    """
    if secret_file is not None:
        path = Path(secret_file)
        if not path.is_file():
            raise ConfigError(f"secret file {path} does not exist; create it with a long random string")
        value = path.read_bytes().strip()
        if not value:
            raise ConfigError(f"secret file {path} is empty; put a long random string in it")
        return value
    env = os.environ.get(SECRET_ENV, "").strip()
    if env:
        return env.encode()
    path = default_secret_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            logger.warning("created a new de-identification site secret at %s; keep it safe and private", path)
    return path.read_bytes().strip()


# -- files, folders, archives -------------------------------------------------------------------------------
class DeidFileRecord(BaseModel):
    """One de-identified instance written."""

    source: str
    output: str = Field(description="Path relative to the output folder.")
    flags: list[DeidFlag] = Field(default_factory=list)


class DeidSkip(BaseModel):
    """One input that was not written, and why."""

    source: str
    reason: str


class DeidReport(BaseModel):
    """What :func:`deidentify_path` did. Source names are site-local: do not ship this report with the data."""

    output_dir: Path
    profile: str = f"DICOM PS3.15 {PS315_EDITION} Annex E Basic Profile + Retain Longitudinal Modified Dates"
    written: list[DeidFileRecord] = Field(default_factory=list)
    skipped: list[DeidSkip] = Field(default_factory=list)
    mapping_path: Path | None = None

    @property
    def burned_in(self) -> list[DeidFileRecord]:
        """Written instances whose pixels may carry burned-in text (flagged, not altered)."""
        codes = (DeidFlagCode.BURNED_IN_ANNOTATION, DeidFlagCode.BURNED_IN_ANNOTATION_POSSIBLE)
        return [r for r in self.written if any(f.code in codes for f in r.flags)]


_MAX_MEMBER_BYTES = 4 * 1024**3
ProgressCallback = Callable[[int, int, str], None]


def _decompress_if_gzip(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            out = gz.read(_MAX_MEMBER_BYTES + 1)
        if len(out) > _MAX_MEMBER_BYTES:
            raise ValueError("gzip member decompresses to more than 4 GiB")
        return out
    return data


def _list_inputs(src: Path | bytes) -> list[tuple[str, Callable[[], bytes]]]:
    """(name, loader) for every candidate file in a file, folder, zip archive or in-memory bytes."""
    if isinstance(src, bytes | bytearray):
        data = bytes(src)
        if zipfile.is_zipfile(io.BytesIO(data)):
            return _zip_inputs(zipfile.ZipFile(io.BytesIO(data)), "<bytes>")
        return [("<bytes>", lambda: data)]
    src = Path(src)
    if not src.exists():
        raise IngestError(f"input {src} does not exist; give a DICOM file, a folder or a zip archive")
    if src.is_dir():
        out: list[tuple[str, Callable[[], bytes]]] = []
        for p in sorted(p for p in src.rglob("*") if p.is_file()):
            name = str(p.relative_to(src))
            if p.suffix.lower() == ".zip" and zipfile.is_zipfile(p):
                out.extend(_zip_inputs(zipfile.ZipFile(p), name))
            else:
                out.append((name, p.read_bytes))
        return out
    if zipfile.is_zipfile(src):
        return _zip_inputs(zipfile.ZipFile(src), src.name)
    return [(src.name, src.read_bytes)]


def _zip_inputs(archive: zipfile.ZipFile, label: str) -> list[tuple[str, Callable[[], bytes]]]:
    out: list[tuple[str, Callable[[], bytes]]] = []
    for info in archive.infolist():
        if info.is_dir():
            continue

        def load(info: zipfile.ZipInfo = info) -> bytes:
            if info.file_size > _MAX_MEMBER_BYTES:
                raise ValueError(f"archive member is {info.file_size} bytes, more than 4 GiB")
            return archive.read(info)

        out.append((f"{label}:{info.filename}", load))
    return out


def _read_dicom(data: bytes) -> Dataset | str:
    """The data set in ``data``, or the reason it is not usable DICOM."""
    try:
        data = _decompress_if_gzip(data)
    except (OSError, EOFError, ValueError) as exc:
        return f"corrupt gzip: {exc}"
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception as exc:  # noqa: BLE001 -- any parser failure means "not DICOM"
            return f"not a DICOM file ({type(exc).__name__})"
        try:
            usable = "SOPClassUID" in ds and "SOPInstanceUID" in ds
        except Exception:  # noqa: BLE001
            usable = False
        if not usable:
            return "not a DICOM file (no DICM prefix and no SOP Class/Instance UID)"
    except Exception as exc:  # noqa: BLE001 -- truncated or malformed: report, never crash
        return f"unreadable DICOM ({type(exc).__name__}: {exc})"
    try:
        ds.SOPInstanceUID  # noqa: B018 -- forces parsing of the identifying attributes
    except AttributeError:
        return "DICOM without SOP Instance UID (a DICOMDIR or fragment?); nothing to de-identify"
    except Exception as exc:  # noqa: BLE001
        return f"unreadable DICOM ({type(exc).__name__}: {exc})"
    _ensure_file_meta(ds)
    return ds


def _ensure_file_meta(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding if ds.original_encoding[0] is not None else (True, True)
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _safe_component(uid: str) -> str:
    return "".join(c for c in str(uid) if c.isdigit() or c == ".") or "unknown"


def _check_mapping_path(mapping_path: Path, dst: Path) -> Path:
    mapping_path = Path(mapping_path).resolve()
    dst = dst.resolve()
    if mapping_path.is_relative_to(dst) or mapping_path.name.startswith(f".{dst.name}.partial-"):
        raise ConfigError(
            f"the re-identification mapping {mapping_path} would be inside the output folder {dst}; "
            "write it to a site-local path outside the de-identified output"
        )
    return mapping_path


def _write_mapping(mapping_path: Path, deid: Deidentifier) -> None:
    data: dict[str, Any] = {"format": "medai-deid-mapping/1", "patients": {}, "uids": {}, "date_offsets": {}}
    if mapping_path.exists():
        try:
            old = json.loads(mapping_path.read_text())
            for key in ("patients", "uids", "date_offsets"):
                data[key].update(old.get(key, {}))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"existing mapping {mapping_path} is not readable JSON ({exc}); move it away") from exc
    data["patients"].update(deid.patient_map)
    data["uids"].update(deid.uid_map)
    data["date_offsets"].update(
        {deid.patient_map[k]: {"days": v.days, "seconds": v.seconds} for k, v in deid.date_offsets.items()}
    )
    mapping_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = mapping_path.with_name(f".{mapping_path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, mapping_path)


def deidentify_path(
    src: Path | str | bytes,
    dst: Path | str,
    *,
    secret: bytes | None = None,
    mapping_path: Path | str | None = None,
    progress: ProgressCallback | None = None,
    retain_patient_characteristics: bool = False,
) -> DeidReport:
    """Write a de-identified copy of a DICOM file, folder (recursive), zip archive or in-memory bytes.

    Outputs are laid out as ``dst/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` with the new
    UIDs (original file names can hold patient names and are not reused). Everything is first written to a
    temporary sibling folder that is renamed to ``dst`` only when all inputs were handled, so a failure leaves
    nothing half-written. Gzipped files (``.dcm.gz``) are decompressed. Non-DICOM and unreadable inputs are
    skipped with a reason; a second copy of an instance is skipped as a duplicate, a different object with the
    same SOP Instance UID as a conflicting duplicate.

    Args:
        src: Input file, folder or zip archive, or the bytes of a file or zip archive.
        dst: Output folder; must not exist or be empty.
        secret: Site secret; default :func:`load_site_secret`.
        mapping_path: Optional site-local JSON file receiving (merged with any existing content) the
            re-identification mapping. Refused when inside ``dst``.
        progress: Called as ``progress(done, total, source_name)`` after each input.
        retain_patient_characteristics: keep sex, age, size, weight... (:class:`Deidentifier`; PS3.15 E.3.10).

    Returns:
        What was written and skipped, with flags (burned-in annotation, invalid dates).

    Raises:
        ConfigError: ``dst`` exists and is not empty, or the mapping path is inside it.
        IngestError: the input does not exist or holds no usable DICOM.
    """
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ConfigError(f"output {dst} already exists and is not an empty folder; choose a new output folder")
    mapping = _check_mapping_path(Path(mapping_path), dst) if mapping_path is not None else None
    deid = Deidentifier(secret if secret is not None else load_site_secret(),
                        retain_patient_characteristics=retain_patient_characteristics)
    inputs = _list_inputs(src if isinstance(src, bytes | bytearray) else Path(src))
    report = DeidReport(output_dir=dst.resolve(), mapping_path=mapping)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.partial-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        with _quiet_pydicom():
            for i, (name, load) in enumerate(inputs, start=1):
                _deidentify_one(name, load, deid, tmp, report)
                if progress is not None:
                    progress(i, len(inputs), name)
        if not report.written:
            reasons = "; ".join(f"{s.source}: {s.reason}" for s in report.skipped[:5]) or "no files found"
            raise IngestError(f"no DICOM instance could be de-identified from {src!s:.200} ({reasons})")
        if mapping is not None:
            _write_mapping(mapping, deid)
        if dst.exists():
            dst.rmdir()
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's value-validation warnings while reading/writing a batch.

    Real archives are full of slightly invalid values (UIDs with leading zeros, over-long SH); the warnings would
    echo original identifiers to the console and they change nothing in the output.
    """
    settings = pydicom.config.settings
    saved = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = saved


def _deidentify_one(name: str, load: Callable[[], bytes], deid: Deidentifier, out: Path, report: DeidReport) -> None:
    try:
        data = load()
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        report.skipped.append(DeidSkip(source=name, reason=f"cannot read: {exc}"))
        return
    ds = _read_dicom(data)
    del data
    if isinstance(ds, str):
        report.skipped.append(DeidSkip(source=name, reason=ds))
        return
    try:
        result = deid.deidentify_dataset(ds, in_place=True)
        buf = io.BytesIO()
        result.dataset.save_as(buf, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 -- a malformed element must not stop the batch
        report.skipped.append(DeidSkip(source=name, reason=f"cannot de-identify ({type(exc).__name__}: {exc})"))
        return
    new = result.dataset
    rel = Path(
        _safe_component(new.get("StudyInstanceUID", "")),
        _safe_component(new.get("SeriesInstanceUID", "")),
        _safe_component(new.SOPInstanceUID) + ".dcm",
    )
    target = out / rel
    payload = buf.getvalue()
    if target.exists():
        same = target.read_bytes() == payload
        reason = (
            "duplicate of an instance already written"
            if same
            else ("conflicting duplicate: another object with the same SOP Instance UID was already written")
        )
        report.skipped.append(DeidSkip(source=name, reason=reason))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    report.written.append(DeidFileRecord(source=name, output=rel.as_posix(), flags=result.flags))
