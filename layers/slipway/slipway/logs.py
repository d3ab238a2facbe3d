"""Structured JSON logs (Powertools Logger) for a function and the library beneath it."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers


def setup(service: str) -> Logger:
    """A function's logger; library loggers (`slipway.*`) propagate to it as JSON too."""
    logger = Logger(service=service)
    logging.getLogger("slipway")  # make sure the parent exists to receive the config
    copy_config_to_registered_loggers(source_logger=logger, include={"slipway"})
    return logger
