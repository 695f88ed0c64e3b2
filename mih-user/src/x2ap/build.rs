//! Build X2AP handover PDUs (HandoverRequest, HandoverRequestAcknowledge) for a given UE and target cell.
