"""The dunning service's FastAPI app; run with `uvicorn --factory services.dunning.api.app:create_app`."""

import logging

from fastapi import FastAPI

from services.dunning.adapters.email import SmtpConfig, SmtpSender
from services.dunning.adapters.reporting import StatementClient
from services.dunning.api.routes import router
from services.dunning.application.mailer import MailerConfig
from services.dunning.application.scheduler import DunningScheduler, Mailer
from services.dunning.config import DunningSettings
from services.dunning.consumers import CONSUMERS
from shared.service_tokens import ServiceTokens
from shared.web.app import create_service_app
from shared.web.runtime import Worker

log = logging.getLogger(__name__)


def _statements(settings: DunningSettings) -> StatementClient | None:
    """The reporting client, or None (statements wait, loudly) without a key to sign with."""
    try:
        tokens = ServiceTokens(settings.auth)
    except RuntimeError as exc:
        log.warning("statements of account are not sent: %s", exc)
        return None
    return StatementClient(
        settings.reporting_url, tokens, timeout_seconds=settings.reporting_timeout_seconds
    )


def create_app(settings: DunningSettings | None = None) -> FastAPI:
    settings = settings or DunningSettings()
    sender = SmtpSender(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            use_tls=settings.smtp_use_tls,
        )
    )
    config = MailerConfig(
        seller_name=settings.seller_name,
        from_address=settings.from_address,
        reply_to=settings.reply_to,
        portal=settings.portal,
        timezone=settings.timezone,
        quiet_start=settings.quiet_start,
        quiet_end=settings.quiet_end,
    )
    workers: list[Worker] = (
        [
            DunningScheduler(settings.scheduler_interval_seconds, settings.timezone),
            Mailer(settings.mailer_interval_seconds, sender, config, _statements(settings)),
        ]
        if settings.run_scheduler
        else []
    )
    return create_service_app(
        settings,
        title="Ledgerline dunning service",
        description="Follow-up policies, reminders by e-mail, late fees, escalation, promises to pay.",
        routers=[router],
        consumers=CONSUMERS,
        workers=workers,
    )
