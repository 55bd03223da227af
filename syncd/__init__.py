"""syncd: keeps a DAM or CMS in step with everything licensed from Shutterstock."""

__version__ = "0.1.0"
