/* SPDX-License-Identifier: MIT */
#pragma once

/* One journal MESSAGE_ID per kind of event; each has an entry in
 * catalog/docker-socket-proxy.catalog. Never reuse or change one. */

#define DSP_MESSAGE_REQUEST_REFUSED "03af889615c540f7a2e89bf7b88d0426"
#define DSP_MESSAGE_REQUEST_MALFORMED "746bf71bdcde44bfbbb74555aeb0d545"
#define DSP_MESSAGE_REQUEST_ALLOWED "bcba4df17918470b89de5f061ea552ea"
#define DSP_MESSAGE_DAEMON_FAILED "a995b3f7972249198c8e6c0734e6dea1"
#define DSP_MESSAGE_STARTED "48e4d0f7277d414e80cbb6f85f677acd"
#define DSP_MESSAGE_STOPPED "8d785f7b2414464ea48e9df5427cc1ed"
#define DSP_MESSAGE_SUPPRESSED "08b94f1cc0b345cd805f355ec0fcef07"
#define DSP_MESSAGE_RELOADED "2372942d9c2d446a99cbdc7553e832b5"
#define DSP_MESSAGE_TUNNEL_CLOSED "0c42784610f94a718516ce37a9aeda44"
